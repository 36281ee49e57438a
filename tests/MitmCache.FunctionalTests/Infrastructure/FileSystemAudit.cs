using System.Text.RegularExpressions;

namespace MitmCache.FunctionalTests.Infrastructure;

/// <summary>
/// Proves that hostile requests wrote nothing they should not: the blob tree holds only
/// digest-named files, no temp file is left, and no file appeared next to the data directory
/// (where <c>../</c> from <c>blobs/sha256/ab/</c> would land).
/// </summary>
public sealed partial class FileSystemAudit
{
    private readonly string _root;
    private readonly string[] _excluded;
    private readonly HashSet<string> _before;

    private FileSystemAudit(string root, string[] excluded)
    {
        _root = root;
        _excluded = excluded;
        _before = Snapshot();
    }

    /// <param name="root">Watched recursively, except <paramref name="excluded"/> (the data directory, upstream storage).</param>
    public static FileSystemAudit Start(string root, params string[] excluded) =>
        new(Path.GetFullPath(root), [.. excluded.Select(e => Path.GetFullPath(e) + Path.DirectorySeparatorChar)]);

    /// <summary>Nothing was created or removed under the root outside the excluded directories.</summary>
    public void AssertNothingNewOutside()
    {
        var after = Snapshot();
        Assert.True(after.SetEquals(_before),
            $"files changed outside the data directory: +[{string.Join(", ", after.Except(_before))}] -[{string.Join(", ", _before.Except(after))}]");
    }

    /// <summary>Every file under <c>blobs/</c> is <c>sha256/ab/&lt;64 hex&gt;</c> or <c>sha512/ab/&lt;128 hex&gt;</c>, and <c>tmp/</c> is empty.</summary>
    public static void AssertDataDirectoryClean(string dataDirectory)
    {
        var blobs = Path.Combine(dataDirectory, "blobs");
        var unexpected = Directory.EnumerateFileSystemEntries(blobs, "*", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(blobs, p).Replace('\\', '/'))
            .Where(p => !BlobTreeEntry().IsMatch(p))
            .ToList();
        Assert.True(unexpected.Count == 0, $"unexpected entries in the blob tree: {string.Join(", ", unexpected)}");

        // A fill commits (renames its temp file) just after its last byte went out; give it a moment.
        var temp = Path.Combine(dataDirectory, "tmp");
        for (var i = 0; i < 50 && Directory.Exists(temp) && Directory.EnumerateFileSystemEntries(temp).Any(); i++)
        {
            Thread.Sleep(100);
        }

        Assert.True(!Directory.Exists(temp) || !Directory.EnumerateFileSystemEntries(temp).Any(),
            $"temp files left: {string.Join(", ", Directory.Exists(temp) ? Directory.EnumerateFileSystemEntries(temp) : [])}");

        var odd = Directory.EnumerateFileSystemEntries(dataDirectory, "*", SearchOption.AllDirectories)
            .Where(p => Path.GetFileName(p).IndexOfAny(['%', '\\', ':']) >= 0 || Path.GetFileName(p).Contains("..", StringComparison.Ordinal)
                || Path.GetFileName(p) is "passwd" or "etc")
            .ToList();
        Assert.True(odd.Count == 0, $"odd names in the data directory: {string.Join(", ", odd)}");
    }

    private HashSet<string> Snapshot() =>
        Directory.EnumerateFileSystemEntries(_root, "*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0 })
            .Where(p => !_excluded.Any(e => (p + Path.DirectorySeparatorChar).StartsWith(e, StringComparison.Ordinal)))
            .ToHashSet(StringComparer.Ordinal);

    [GeneratedRegex(@"^(sha256(/[0-9a-f]{2}(/[0-9a-f]{64})?)?|sha512(/[0-9a-f]{2}(/[0-9a-f]{128})?)?)\z")]
    private static partial Regex BlobTreeEntry();
}
