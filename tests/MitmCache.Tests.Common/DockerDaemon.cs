using System.Diagnostics;

namespace MitmCache.Tests.Common;

/// <summary>
/// A private Docker daemon (Debian's docker.io 20.10) with everything under one directory and no
/// networking of its own. dockerd pulls in the daemon, so HTTPS_PROXY and trust (SSL_CERT_FILE)
/// belong in the daemon's environment, exactly as a systemd drop-in gives them.
/// </summary>
public sealed class DockerDaemon : IAsyncDisposable
{
    public const string Daemon = "/usr/sbin/dockerd";
    private const string Client = "/usr/bin/docker";

    private readonly BackgroundProcess _process;
    private readonly string _dir;

    private DockerDaemon(BackgroundProcess process, string dir, string socket)
    {
        _process = process;
        _dir = dir;
        Socket = socket;
    }

    public string Socket { get; }

    public string Output => _process.DescribeOutput();

    /// <param name="environment">The daemon's environment: HTTPS_PROXY, SSL_CERT_FILE and so on.</param>
    public static async Task<DockerDaemon> StartAsync(string dir, IDictionary<string, string?> environment, CancellationToken ct)
    {
        Directory.CreateDirectory(dir);
        var socket = Path.Combine(dir, "docker.sock");
        var config = Path.Combine(dir, "daemon.json");
        await File.WriteAllTextAsync(config, "{}", ct);
        var process = BackgroundProcess.Start(Daemon,
        [
            "--config-file", config, "--data-root", Path.Combine(dir, "data"), "--exec-root", Path.Combine(dir, "exec"),
            "--pidfile", Path.Combine(dir, "docker.pid"), "-H", $"unix://{socket}", "--iptables=false", "--ip6tables=false",
            "--ip-masq=false", "--bridge=none", "--storage-driver=overlay2",
        ], environment);
        var daemon = new DockerDaemon(process, dir, socket);
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"dockerd exited at start-up:\n{daemon.Output}");
            }

            if (File.Exists(socket) && (await daemon.RunAsync(["version", "--format", "{{.Server.Version}}"], ct)).Succeeded)
            {
                return daemon;
            }

            if (deadline.Elapsed > TimeSpan.FromSeconds(60))
            {
                await daemon.DisposeAsync();
                throw new TimeoutException($"dockerd did not come up:\n{daemon.Output}");
            }

            await Task.Delay(200, ct);
        }
    }

    /// <summary>Runs the Debian docker client against this daemon.</summary>
    public Task<ProcessResult> RunAsync(IEnumerable<string> args, CancellationToken ct) =>
        ProcessRunner.RunAsync(Client, ["-H", $"unix://{Socket}", .. args], timeout: TimeSpan.FromMinutes(3), ct: ct);

    public Task<ProcessResult> PullAsync(string reference, CancellationToken ct) => RunAsync(["pull", reference], ct);

    /// <summary>
    /// Stops dockerd as systemd would (SIGTERM, then SIGKILL), then unmounts what it left: it bind-mounts
    /// its data root onto itself, and a killed daemon leaves that mount behind, one per test run.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            await ProcessRunner.RunAsync("kill", ["-TERM", _process.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            var deadline = Stopwatch.StartNew();
            while (!_process.HasExited && deadline.Elapsed < TimeSpan.FromSeconds(15))
            {
                await Task.Delay(100);
            }
        }

        _process.Dispose();
        var root = Path.GetFullPath(_dir) + "/";
        var leftovers = File.ReadAllLines("/proc/self/mountinfo")
            .Select(line => line.Split(' ')[4])
            .Where(mountPoint => mountPoint.StartsWith(root, StringComparison.Ordinal))
            .OrderByDescending(mountPoint => mountPoint.Length);
        foreach (var mountPoint in leftovers)
        {
            await ProcessRunner.RunAsync("umount", ["-l", mountPoint]);
        }
    }
}
