using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Infrastructure;

/// <summary>
/// The other peer: Debian's Squid 5 (squid-openssl) as an ssl-bump caching proxy with
/// <c>collapsed_forwarding on</c>, so concurrent misses on one URL wait for one upstream fetch. It bumps
/// with the test CA (minting leaves through <c>security_file_certgen</c>), trusts that CA upstream, and
/// reaches <c>registry.test</c> through a hosts file of its own. A disk cache (ufs) big enough for the blob.
/// Squid drops to the <c>proxy</c> user, so it lives in a directory of its own that user owns.
/// </summary>
internal sealed class SquidServer : IDisposable
{
    private const string Squid = "/usr/sbin/squid";
    private readonly BackgroundProcess _process;

    private SquidServer(BackgroundProcess process, string dir, int port)
    {
        _process = process;
        Dir = dir;
        Port = port;
    }

    public int Port { get; }

    public string Dir { get; }

    public string Url => $"http://127.0.0.1:{Port}";

    public static bool Installed => File.Exists(Squid) && File.Exists("/usr/lib/squid/security_file_certgen");

    public static async Task<SquidServer> StartAsync(TestPki pki)
    {
        var dir = Directory.CreateTempSubdirectory("mitmcache-squid-").FullName;
        File.Copy(pki.CaCertPath, Path.Combine(dir, "ca.pem"));
        File.Copy(pki.CaKeyPath, Path.Combine(dir, "ca.key"));
        await File.WriteAllTextAsync(Path.Combine(dir, "hosts"), $"127.0.0.1 {Hosts.Registry}\n");
        await RunAsync("/usr/lib/squid/security_file_certgen", "-c", "-s", Path.Combine(dir, "ssl_db"), "-M", "16MB");
        var port = FreePort.Get();
        var config = Path.Combine(dir, "squid.conf");
        await File.WriteAllTextAsync(config, Config(dir, port));
        await RunAsync("chown", "-R", "proxy:proxy", dir);
        await RunAsync(Squid, "-f", config, "-N", "-z");
        var process = BackgroundProcess.Start(Squid, ["-f", config, "-N"]);
        var squid = new SquidServer(process, dir, port);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline && !process.HasExited)
        {
            if (await FreePort.IsListeningAsync(port))
            {
                return squid;
            }

            await Task.Delay(100);
        }

        var log = File.Exists(Path.Combine(dir, "cache.log")) ? await File.ReadAllTextAsync(Path.Combine(dir, "cache.log")) : "";
        squid.Dispose();
        throw new InvalidOperationException($"squid did not start:\n{process.DescribeOutput()}\n{log}");
    }

    private static string Config(string dir, int port) => string.Join('\n',
        $"http_port 127.0.0.1:{port} ssl-bump tls-cert={dir}/ca.pem tls-key={dir}/ca.key generate-host-certificates=on dynamic_cert_mem_cache_size=16MB",
        $"sslcrtd_program /usr/lib/squid/security_file_certgen -s {dir}/ssl_db -M 16MB",
        "sslcrtd_children 4",
        "acl step1 at_step SslBump1",
        "ssl_bump peek step1",
        "ssl_bump bump all",
        $"tls_outgoing_options cafile={dir}/ca.pem",
        $"hosts_file {dir}/hosts",
        "http_access allow localhost",
        "http_access deny all",
        "collapsed_forwarding on",
        "cache_mem 64 MB",
        "maximum_object_size 2 GB",
        "maximum_object_size_in_memory 1 MB",
        $"cache_dir ufs {dir}/cache 4096 16 256",
        $"pid_filename {dir}/squid.pid",
        $"access_log stdio:{dir}/access.log",
        $"cache_log {dir}/cache.log",
        $"coredump_dir {dir}",
        "shutdown_lifetime 1 seconds",
        "");

    private static async Task RunAsync(string file, params string[] args)
    {
        var result = await ProcessRunner.RunAsync(file, args);
        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"{file} failed: {result}");
        }
    }

    public void Dispose()
    {
        _process.Dispose();
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
            // A helper may still hold a file for a moment; the temp folder is swept anyway.
        }
    }
}
