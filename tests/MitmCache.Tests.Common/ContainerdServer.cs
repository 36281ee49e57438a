using System.Text;

namespace MitmCache.Tests.Common;

/// <summary>
/// A private containerd 1.6 with everything under one directory (no CRI, no exotic
/// snapshotters, no tracing, no metrics). ctr does registry fetches in its own process,
/// so HTTPS_PROXY and trust belong in ctr's environment and flags, not the daemon's.
/// </summary>
public sealed class ContainerdServer : IAsyncDisposable
{
    public const string Namespace = "test";
    private const string Daemon = "/usr/bin/containerd";
    private const string Ctr = "/usr/bin/ctr";

    private readonly BackgroundProcess _process;

    private ContainerdServer(BackgroundProcess process, string address)
    {
        _process = process;
        Address = address;
    }

    /// <summary>Path of the gRPC socket.</summary>
    public string Address { get; }

    /// <summary>The daemon's output so far, for failure messages.</summary>
    public string Output => _process.DescribeOutput();

    public static async Task<ContainerdServer> StartAsync(string dir, CancellationToken ct)
    {
        Directory.CreateDirectory(dir);
        var address = Path.Combine(dir, "containerd.sock");
        var configPath = Path.Combine(dir, "config.toml");
        await File.WriteAllTextAsync(configPath, Config(dir, address), ct);

        var server = new ContainerdServer(BackgroundProcess.Start(Daemon, ["--config", configPath]), address);
        try
        {
            await server.WaitUntilReadyAsync(ct);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs <c>ctr -a SOCK -n test ARGS</c>.</summary>
    public Task<ProcessResult> CtrAsync(IEnumerable<string> args, IDictionary<string, string?>? env, CancellationToken ct) =>
        CtrAsync(args, env, hostsFile: null, ct);

    /// <param name="hostsFile">When set, ctr runs with this file as /etc/hosts (see <see cref="PrivateHosts"/>).</param>
    public Task<ProcessResult> CtrAsync(IEnumerable<string> args, IDictionary<string, string?>? env, string? hostsFile, CancellationToken ct)
    {
        var (file, wrapped) = PrivateHosts.Wrap(hostsFile, Ctr, ["-a", Address, "-n", Namespace, .. args]);
        return ProcessRunner.RunAsync(file, wrapped, env, ct: ct);
    }

    /// <summary><c>ctr content fetch --tlscacert CA [--user u:p] REF</c>: fetches the current platform without unpacking.</summary>
    public Task<ProcessResult> ContentFetchAsync(string imageRef, string? httpsProxy, string caBundlePath, string? user, CancellationToken ct) =>
        ContentFetchAsync(imageRef, httpsProxy, caBundlePath, user, allPlatforms: false, hostsFile: null, ct);

    public Task<ProcessResult> ContentFetchAsync(string imageRef, string? httpsProxy, string caBundlePath, string? user,
        bool allPlatforms, string? hostsFile, CancellationToken ct)
    {
        List<string> args = ["content", "fetch", "--tlscacert", caBundlePath];
        if (user is not null)
        {
            args.AddRange(["--user", user]);
        }

        if (allPlatforms)
        {
            args.Add("--all-platforms");
        }

        args.Add(imageRef);
        var env = new Dictionary<string, string?>();
        if (httpsProxy is not null)
        {
            env["HTTPS_PROXY"] = httpsProxy;
        }

        return CtrAsync(args, env, hostsFile, ct);
    }

    public ValueTask DisposeAsync()
    {
        _process.Dispose();
        return ValueTask.CompletedTask;
    }

    private async Task WaitUntilReadyAsync(CancellationToken ct)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!File.Exists(Address) || !(await CtrAsync(["version"], null, ct)).Succeeded)
        {
            if (_process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"containerd did not come up.\n{Output}");
            }

            await Task.Delay(100, ct);
        }
    }

    private static string Config(string dir, string address)
    {
        var config = new StringBuilder();
        config.AppendLine("version = 2");
        config.AppendLine($"root = \"{Path.Combine(dir, "root")}\"");
        config.AppendLine($"state = \"{Path.Combine(dir, "state")}\"");
        config.AppendLine("disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.aufs\", " +
            "\"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \"io.containerd.snapshotter.v1.devmapper\", " +
            "\"io.containerd.tracing.processor.v1.otlp\", \"io.containerd.internal.v1.tracing\"]");
        config.AppendLine($"[grpc]\n  address = \"{address}\"");
        config.AppendLine($"[ttrpc]\n  address = \"{address}.ttrpc\"");
        config.AppendLine($"[debug]\n  address = \"{Path.Combine(dir, "debug.sock")}\"");
        config.AppendLine("[metrics]\n  address = \"\"");
        return config.ToString();
    }
}
