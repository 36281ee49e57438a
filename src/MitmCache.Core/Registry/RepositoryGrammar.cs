using System.Text.RegularExpressions;

namespace MitmCache.Registry;

/// <summary>
/// Repository name and tag grammar from the OCI distribution spec
/// (https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests).
/// </summary>
/// <remarks>
/// The patterns end in <c>\z</c>, not <c>$</c>: in .NET <c>$</c> also matches before a trailing
/// newline. Neither pattern can backtrack badly: separators are mandatory between alphanumeric runs.
/// </remarks>
internal static partial class RepositoryGrammar
{
    public const int MaxNameLength = 255;

    /// <summary>True when <paramref name="name"/> is a valid repository name (e.g. <c>library/busybox</c>).</summary>
    public static bool IsValidName(ReadOnlySpan<char> name)
    {
        return name.Length is > 0 and <= MaxNameLength && NameRegex().IsMatch(name);
    }

    /// <summary>True when <paramref name="tag"/> is a valid tag (at most 128 characters).</summary>
    public static bool IsValidTag(ReadOnlySpan<char> tag)
    {
        return tag.Length is > 0 and <= 128 && TagRegex().IsMatch(tag);
    }

    [GeneratedRegex(@"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*\z", RegexOptions.CultureInvariant)]
    private static partial Regex NameRegex();

    [GeneratedRegex(@"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}\z", RegexOptions.CultureInvariant)]
    private static partial Regex TagRegex();
}
