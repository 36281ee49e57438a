using System.Net;
using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Infrastructure;

/// <summary>
/// The peer: distribution 2.8 as a pull-through cache (<c>proxy: remoteurl:</c>) of the upstream registry,
/// on its own TLS port. It reaches <c>registry.test</c> through a private /etc/hosts (<see cref="PrivateHosts"/>)
/// and trusts the test CA through SSL_CERT_FILE. Clients name it <c>registry.test:PORT</c> too.
/// </summary>
internal sealed class PullThroughRegistry : IDisposable
{
    private readonly BackgroundProcess _process;
    private readonly string _dir;
    private readonly string _configPath;
    private int _pid = -1;

    private PullThroughRegistry(BackgroundProcess process, int port, string dir, string configPath)
    {
        _process = process;
        _dir = dir;
        _configPath = configPath;
        Port = port;
        StorageRoot = Path.Combine(dir, "storage");
    }

    public int Port { get; }

    public string StorageRoot { get; }

    public string Output => _process.DescribeOutput();

    public static async Task<PullThroughRegistry> StartAsync(TestPki pki, string dir, RegistryServer upstream)
    {
        Directory.CreateDirectory(dir);
        var storage = Path.Combine(dir, "storage");
        var hosts = PrivateHosts.WriteFile(Path.Combine(dir, "hosts"), Hosts.Registry);
        var (cert, key) = pki.IssueServer($"pullthrough-{Guid.NewGuid():N}", Hosts.Registry);
        for (var attempt = 1; ; attempt++)
        {
            var port = FreePort.Get();
            var config = Path.Combine(dir, "config.yml");
            var remote = upstream.BaseUri.ToString().TrimEnd('/');
            await File.WriteAllTextAsync(config, string.Join('\n',
                "version: 0.1",
                "log: {level: warn, formatter: text, accesslog: {disabled: true}}",
                $"storage: {{filesystem: {{rootdirectory: \"{storage}\"}}, delete: {{enabled: true}}}}",
                $"http: {{addr: \"127.0.0.1:{port}\", secret: bench-secret, tls: {{certificate: \"{cert}\", key: \"{key}\"}}}}",
                "health: {storagedriver: {enabled: false}}",
                $"proxy: {{remoteurl: \"{remote}\"}}",
                ""));
            var (file, args) = PrivateHosts.Wrap(hosts, "/usr/bin/docker-registry", ["serve", config]);
            var process = BackgroundProcess.Start(file, args, new Dictionary<string, string?> { ["SSL_CERT_FILE"] = pki.CaCertPath });
            var registry = new PullThroughRegistry(process, port, dir, config);
            if (await registry.WaitReadyAsync(pki))
            {
                return registry;
            }

            var output = registry.Output;
            registry.Dispose();
            if (attempt == 3)
            {
                throw new InvalidOperationException($"pull-through registry did not start:\n{output}");
            }
        }
    }

    /// <summary>How clients reach it: <c>registry.test:PORT</c> dialled to 127.0.0.1, trusting the test CA.</summary>
    public CurlRoute Route(TestPki pki) => CurlRoute.Direct(pki.CaCertPath, Hosts.Registry, Port, Port);

    /// <summary>The blob's URL on this peer.</summary>
    public string BlobUrl(string repository, string digest) => $"https://{Hosts.Registry}:{Port}/v2/{repository}/blobs/{digest}";

    /// <summary>True once the blob is in its own storage, i.e. later GETs are served locally.</summary>
    public bool HasBlob(SeededBlob blob) => HasBlob(blob.Hex, blob.Size);

    private bool HasBlob(string hex, long size)
    {
        var data = new FileInfo(Path.Combine(StorageRoot, "docker", "registry", "v2", "blobs", "sha256", hex[..2], hex, "data"));
        return data.Exists && data.Length == size;
    }

    /// <summary>
    /// Waits until every blob (hex digest, size) is in its own storage: it stores what it serves in the
    /// background, after the client has its bytes. False if they are not there within a minute.
    /// </summary>
    public async Task<bool> WaitStoredAsync(IEnumerable<(string Hex, long Size)> blobs)
    {
        var all = blobs.ToList();
        for (var wait = 0; wait < 600; wait++)
        {
            if (all.All(b => HasBlob(b.Hex, b.Size)))
            {
                return true;
            }

            await Task.Delay(100);
        }

        return false;
    }

    /// <summary>User + system CPU time of the registry process (not of the unshare wrapper around it).</summary>
    public TimeSpan CpuTime()
    {
        if (_pid < 0)
        {
            _pid = ProcStat.FindByCommandLine(_configPath);
        }

        return ProcStat.CpuTime(_pid);
    }

    private async Task<bool> WaitReadyAsync(TestPki pki)
    {
        using var http = LoopbackHttp.CreateClient(new Dictionary<string, int> { [Hosts.Registry] = Port }, pki.CaCertificate, TimeSpan.FromSeconds(2));
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline && !_process.HasExited)
        {
            try
            {
                using var response = await http.GetAsync(new Uri($"https://{Hosts.Registry}:{Port}/v2/"));
                if (response.StatusCode is HttpStatusCode.OK or HttpStatusCode.Unauthorized)
                {
                    return true;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
            }

            await Task.Delay(50);
        }

        return false;
    }

    public void Dispose() => _process.Dispose();

    /// <summary>Stops it and deletes its storage (cold runs would fill the disk otherwise).</summary>
    public void Discard()
    {
        Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
