using System.Runtime.Versioning;

namespace MitmCache.Certificates;

/// <summary>
/// Writes files that must never be seen half-written or, for secrets, readable by anyone but the
/// owner. On Unix the mode is set by open(2) itself, so there is no window between creating the
/// file and restricting it (a chmod afterwards would leave one).
/// </summary>
internal static class PrivateFile
{
    /// <summary>rw------- : the owner only.</summary>
    public const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>rw-r--r-- : for public material such as a certificate.</summary>
    public const UnixFileMode WorldReadable = OwnerOnly | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    private const UnixFileMode GroupOrOther =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
        UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>Creates <paramref name="directory"/> as rwx------ if it does not exist yet; an existing one is left as it is.</summary>
    public static void EnsureDirectory(string directory)
    {
        if (Directory.Exists(directory))
        {
            return;
        }

        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(directory);
        }
        else
        {
            Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    /// <summary>
    /// Writes <paramref name="content"/> to a new temporary file in the same directory, created
    /// with <paramref name="mode"/>, flushes it to disk and renames it over <paramref name="path"/>.
    /// A crash leaves either the old file or the new one, never a torn one.
    /// </summary>
    public static void WriteAtomically(string path, ReadOnlySpan<byte> content, UnixFileMode mode)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            Share = FileShare.None,
        };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = mode;
        }

        try
        {
            using (var stream = new FileStream(temp, options))
            {
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }

            // rename(2) keeps the temp file's mode, so the key is never visible with a wider one.
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>
    /// Returns an error message when group or other users have any access to <paramref name="path"/>,
    /// as OpenSSH does for private keys; null when the mode is fine.
    /// </summary>
    [UnsupportedOSPlatform("windows")]
    public static string? CheckOwnerOnly(string path)
    {
        var mode = File.GetUnixFileMode(path);
        if ((mode & GroupOrOther) == 0)
        {
            return null;
        }

        var octal = Convert.ToString((int)mode, 8).PadLeft(4, '0');
        return $"Private key file '{path}' has mode {octal}, so other users can read or change it. " +
            $"Refusing to use it. Fix it with: chmod 600 {ShellQuote(path)}";
    }

    private static string ShellQuote(string path) =>
        path.All(c => char.IsAsciiLetterOrDigit(c) || c is '/' or '.' or '_' or '-' or '+' or ':' or '@' or '%' or ',')
            ? path
            : "'" + path.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
