namespace MitmCache.Tests.Common;

/// <summary>
/// podman 4.3 pulling into a store of its own (a temp root, vfs, no events, no cgroups touched), so the
/// machine's /var/lib/containers is never used. Trust comes from SSL_CERT_FILE, as for skopeo;
/// stored credentials are never used (an empty auth file).
/// </summary>
public sealed class Podman(string directory)
{
    public const string Executable = "/usr/bin/podman";

    public Task<ProcessResult> PullAsync(string reference, string httpsProxy, string caBundlePath, CancellationToken ct) =>
        RunAsync(["pull", "--authfile", AuthFile(), reference], httpsProxy, caBundlePath, ct);

    /// <summary><c>podman image inspect --format FORMAT REF</c>.</summary>
    public Task<ProcessResult> InspectAsync(string reference, string format, CancellationToken ct) =>
        RunAsync(["image", "inspect", "--format", format, reference], httpsProxy: null, caBundlePath: null, ct);

    private string AuthFile()
    {
        var path = Path.Combine(directory, "auth.json");
        if (!File.Exists(path))
        {
            Directory.CreateDirectory(directory);
            File.WriteAllText(path, "{}");
        }

        return path;
    }

    private Task<ProcessResult> RunAsync(IEnumerable<string> command, string? httpsProxy, string? caBundlePath, CancellationToken ct)
    {
        List<string> args =
        [
            "--root", Path.Combine(directory, "root"), "--runroot", Path.Combine(directory, "run"), "--tmpdir", Path.Combine(directory, "tmp"),
            "--storage-driver", "vfs", "--events-backend", "none", "--cgroup-manager", "cgroupfs", .. command,
        ];
        var env = new Dictionary<string, string?> { ["HOME"] = directory, ["XDG_RUNTIME_DIR"] = Path.Combine(directory, "xdg") };
        if (httpsProxy is not null)
        {
            env["HTTPS_PROXY"] = httpsProxy;
        }

        if (caBundlePath is not null)
        {
            env["SSL_CERT_FILE"] = caBundlePath;
        }

        return ProcessRunner.RunAsync(Executable, args, env, timeout: TimeSpan.FromMinutes(3), ct: ct);
    }
}
