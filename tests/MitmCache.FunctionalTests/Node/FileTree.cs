using System.Globalization;
using System.Security.Cryptography;

namespace MitmCache.FunctionalTests.Node;

/// <summary>
/// A sorted listing of everything under a directory, hidden entries included, one line per
/// entry: path, kind, mode, content hash (files) and optionally the modification time.
/// Two equal snapshots mean nothing was created, removed, rewritten or touched.
/// </summary>
internal static class FileTree
{
    public static IReadOnlyList<string> Snapshot(string root, bool fileTimes = true, bool directoryTimes = true)
    {
        var options = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.None };
        var lines = new List<string>();
        foreach (var entry in new DirectoryInfo(root).EnumerateFileSystemInfos("*", options))
        {
            var relative = Path.GetRelativePath(root, entry.FullName);
            var mode = Convert.ToString((int)entry.UnixFileMode, 8);
            var time = entry.LastWriteTimeUtc.Ticks.ToString(CultureInfo.InvariantCulture);
            lines.Add(entry is FileInfo
                ? $"{relative} file {mode} {Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(entry.FullName)))[..16]}{(fileTimes ? " " + time : "")}"
                : $"{relative}/ dir {mode}{(directoryTimes ? " " + time : "")}");
        }

        lines.Sort(StringComparer.Ordinal);
        return lines;
    }

    /// <summary>Relative paths only, directories with a trailing slash, sorted.</summary>
    public static IReadOnlyList<string> Paths(string root) =>
        Snapshot(root, fileTimes: false, directoryTimes: false).Select(line => line[..line.IndexOf(' ', StringComparison.Ordinal)]).ToList();
}
