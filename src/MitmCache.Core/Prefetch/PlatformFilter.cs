using System.Runtime.InteropServices;
using System.Text.Json;

namespace MitmCache.Prefetch;

/// <summary>
/// Which entries of an image index to prefetch: <c>all</c>, or a list of <c>os/arch[/variant]</c>
/// (<c>linux/amd64,linux/arm64/v8</c>). A platform without a variant matches every variant.
/// The default is this host's platform, as <c>docker pull</c> does.
/// </summary>
internal sealed class PlatformFilter
{
    private readonly IReadOnlyList<(string Os, string Architecture, string? Variant)> _platforms;

    private PlatformFilter(bool all, IReadOnlyList<(string, string, string?)> platforms)
    {
        All = all;
        _platforms = platforms;
    }

    public bool All { get; }

    public static PlatformFilter Host => new(false, [("linux", HostArchitecture(), null)]);

    public static bool TryParse(string? text, out PlatformFilter filter, out string error)
    {
        filter = Host;
        error = "";
        if (string.IsNullOrWhiteSpace(text))
        {
            return true;
        }

        if (text.Trim().Equals("all", StringComparison.OrdinalIgnoreCase))
        {
            filter = new PlatformFilter(true, []);
            return true;
        }

        var platforms = new List<(string, string, string?)>();
        foreach (var item in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = item.ToLowerInvariant().Split('/');
            if (parts.Length is < 2 or > 3 || parts.Any(p => p.Length == 0))
            {
                error = $"'{item}' is not a platform (os/arch or os/arch/variant, e.g. linux/arm64/v8), nor 'all'";
                return false;
            }

            platforms.Add((parts[0], parts[1], parts.Length == 3 ? parts[2] : null));
        }

        filter = new PlatformFilter(false, platforms);
        return true;
    }

    /// <summary>True for an index entry whose <c>platform</c> object is selected (always with <see cref="All"/>).</summary>
    public bool Matches(JsonElement descriptor)
    {
        if (All)
        {
            return true;
        }

        if (!descriptor.TryGetProperty("platform", out var platform) || platform.ValueKind != JsonValueKind.Object)
        {
            return false;
        }

        var os = Text(platform, "os");
        var architecture = Text(platform, "architecture");
        var variant = Text(platform, "variant");
        return _platforms.Any(p => p.Os == os && p.Architecture == architecture && (p.Variant is null || p.Variant == variant));
    }

    public override string ToString() =>
        All ? "all" : string.Join(',', _platforms.Select(p => p.Variant is null ? $"{p.Os}/{p.Architecture}" : $"{p.Os}/{p.Architecture}/{p.Variant}"));

    /// <summary><c>os/arch[/variant]</c> of an index entry, for messages.</summary>
    public static string Describe(JsonElement descriptor) =>
        descriptor.TryGetProperty("platform", out var platform) && platform.ValueKind == JsonValueKind.Object
            ? string.Join('/', new[] { Text(platform, "os"), Text(platform, "architecture"), Text(platform, "variant") }.Where(p => p is not null))
            : "?";

    private static string? Text(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString()?.ToLowerInvariant() : null;

    /// <summary>The GOARCH name of this machine, as image indexes spell it.</summary>
    private static string HostArchitecture() => RuntimeInformation.OSArchitecture switch
    {
        Architecture.X64 => "amd64",
        Architecture.Arm64 => "arm64",
        Architecture.Arm => "arm",
        Architecture.X86 => "386",
        Architecture.S390x => "s390x",
        Architecture.Ppc64le => "ppc64le",
        Architecture.LoongArch64 => "loong64",
        Architecture.RiscV64 => "riscv64",
        var other => other.ToString().ToLowerInvariant(),
    };
}
