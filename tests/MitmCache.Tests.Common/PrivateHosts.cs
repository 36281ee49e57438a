namespace MitmCache.Tests.Common;

/// <summary>
/// Gives one client process its own /etc/hosts, so it can reach the fixtures by name
/// without the proxy and without touching the machine's file: the command runs under
/// <c>unshare --mount --propagation private</c> with a bind-mounted copy. Needs root.
/// </summary>
public static class PrivateHosts
{
    /// <summary>Writes a hosts file that maps <paramref name="names"/> (and localhost) to 127.0.0.1.</summary>
    public static string WriteFile(string path, params string[] names)
    {
        File.WriteAllText(path, $"127.0.0.1 localhost {string.Join(' ', names)}\n::1 localhost\n");
        return path;
    }

    /// <summary>The command line that runs <paramref name="file"/> with <paramref name="hostsFile"/> as /etc/hosts; unchanged when it is null.</summary>
    public static (string File, IReadOnlyList<string> Args) Wrap(string? hostsFile, string file, IEnumerable<string> args)
    {
        if (hostsFile is null)
        {
            return (file, args.ToArray());
        }

        // sh gets the hosts file as $0 and the real command as "$@".
        string[] wrapped =
        [
            "--mount", "--propagation", "private", "--",
            "/bin/sh", "-c", "mount --bind \"$0\" /etc/hosts && exec \"$@\"", hostsFile, file, .. args,
        ];
        return ("/usr/bin/unshare", wrapped);
    }
}
