using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Infrastructure;

/// <summary>
/// Debian's nginx on 127.0.0.1 with TLS (a <see cref="TestPki"/> certificate) and HTTP/2, serving a
/// folder of links to the very files the registry stores: the baseline for warm hits and handshakes.
/// Its configuration is close to the package default: sendfile, no access log, default TLS buffers.
/// </summary>
internal sealed class NginxServer : IDisposable
{
    private readonly BackgroundProcess _process;

    private NginxServer(BackgroundProcess process, int port, string root)
    {
        _process = process;
        Port = port;
        Root = root;
    }

    public int Port { get; }

    /// <summary>The document root; <see cref="Publish"/> adds files to it.</summary>
    public string Root { get; }

    /// <param name="dnsNames">Names on the server certificate (the first is the CN).</param>
    public static async Task<NginxServer> StartAsync(TestPki pki, string dir, params string[] dnsNames)
    {
        Directory.CreateDirectory(dir);
        var root = Path.Combine(dir, "www");
        Directory.CreateDirectory(root);
        var (cert, key) = pki.IssueServer("nginx", dnsNames);
        for (var attempt = 1; ; attempt++)
        {
            var port = FreePort.Get();
            var config = Path.Combine(dir, "nginx.conf");
            await File.WriteAllTextAsync(config, Config(dir, root, port, cert, key));
            var process = BackgroundProcess.Start("/usr/sbin/nginx", ["-c", config, "-p", dir]);
            var server = new NginxServer(process, port, root);
            if (await server.WaitListeningAsync())
            {
                return server;
            }

            var output = process.DescribeOutput() + "\n" + ReadIfExists(Path.Combine(dir, "error.log"));
            server.Dispose();
            if (attempt == 3)
            {
                throw new InvalidOperationException($"nginx did not start:\n{output}");
            }
        }
    }

    /// <summary>Makes <paramref name="file"/> available at <c>/<paramref name="name"/></c> (a symbolic link, so the very same file).</summary>
    public void Publish(string name, string file)
    {
        var link = Path.Combine(Root, name);
        File.Delete(link);
        File.CreateSymbolicLink(link, file);
    }

    /// <summary>User + system CPU time of the master and its worker processes so far.</summary>
    public TimeSpan CpuTime()
    {
        var master = _process.Pid;
        var total = ProcStat.CpuTime(master);
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), out var pid) && pid != master && ProcStat.ParentOf(pid) == master)
            {
                total += ProcStat.CpuTime(pid);
            }
        }

        return total;
    }

    private async Task<bool> WaitListeningAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline && !_process.HasExited)
        {
            if (await FreePort.IsListeningAsync(Port))
            {
                return true;
            }

            await Task.Delay(50);
        }

        return false;
    }

    private static string ReadIfExists(string path) => File.Exists(path) ? File.ReadAllText(path) : "";

    private static string Config(string dir, string root, int port, string cert, string key) => $$"""
        user root;
        worker_processes auto;
        daemon off;
        master_process on;
        pid {{dir}}/nginx.pid;
        error_log {{dir}}/error.log warn;
        events { worker_connections 4096; }
        http {
            access_log off;
            sendfile on;
            tcp_nopush on;
            default_type application/octet-stream;
            client_body_temp_path {{dir}}/body;
            server {
                listen 127.0.0.1:{{port}} ssl http2;
                ssl_certificate {{cert}};
                ssl_certificate_key {{key}};
                root {{root}};
                location / { }
            }
        }
        """;

    public void Dispose() => _process.Dispose();
}
