using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Infrastructure;

/// <summary>
/// Everything the scenarios share, on loopback: a test CA, the upstream registry (distribution 2.8 with
/// TLS, anonymous) as <c>registry.test</c>, nginx serving the registry's own blob files, and the blobs
/// seeded once. Proxies are started per scenario (a cold run needs an empty data directory).
/// </summary>
internal sealed class BenchWorld : IAsyncDisposable
{
    public const string BenchDomain = "bench.test";

    private readonly Dictionary<string, SeededBlob> _blobs = [];
    private int _proxyCount;
    private CpuFloor? _floor;

    private BenchWorld(BenchOptions options, TempDir dir, TestPki pki)
    {
        Options = options;
        Dir = dir;
        Pki = pki;
    }

    public BenchOptions Options { get; }

    public TempDir Dir { get; }

    public TestPki Pki { get; }

    public RegistryServer Registry { get; private set; } = null!;

    public NginxServer Nginx { get; private set; } = null!;

    public static async Task<BenchWorld> StartAsync(BenchOptions options)
    {
        var dir = TempDir.Create("mitmcache-bench");
        var world = new BenchWorld(options, dir, TestPki.Create(dir.Combine("pki")));
        world.Registry = await RegistryServer.StartAsync(world.Pki, dir.Combine("registry"), new RegistryOptions(), CancellationToken.None);
        world.Nginx = await NginxServer.StartAsync(world.Pki, dir.Combine("nginx"), Hosts.Registry, $"*.{BenchDomain}");
        return world;
    }

    /// <summary>The blob named <paramref name="name"/> in repository <c>bench/NAME</c>, written (and tagged latest) on first use, published on nginx as <c>/NAME</c>.</summary>
    public async Task<SeededBlob> BlobAsync(string name, long size)
    {
        if (_blobs.TryGetValue(name, out var blob))
        {
            return blob;
        }

        Console.Error.WriteLine($"  seeding {name}: {size >> 20} MiB");
        blob = BlobSeeder.WriteBlob(Registry, Repository(name), size, Seed(name, size));
        await BlobSeeder.PutManifestAsync(Registry, Repository(name), "latest", [blob]);
        Nginx.Publish(name, blob.StoragePath);
        _blobs[name] = blob;
        return blob;
    }

    /// <summary>FNV-1a of the name and size: the same blob (and digest) in every run.</summary>
    private static ulong Seed(string name, long size)
    {
        var hash = 14695981039346656037UL ^ (ulong)size;
        foreach (var c in name)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }

        return hash;
    }

    /// <summary>The CPU floor of a cold miss on this run (<see cref="CpuFloor"/>), measured on first use.</summary>
    public async Task<CpuFloor> CpuFloorAsync()
    {
        var size = Options.Quick ? 256L << 20 : 1L << 30;
        return _floor ??= await CpuFloor.MeasureAsync(this, size, Options.Repetitions);
    }

    /// <summary>
    /// Runs <paramref name="work"/> with the registry's access log cleared first, waits until every request
    /// answered so far is logged (<see cref="RegistryServer.SyncAccessLogAsync"/>), and counts them by method.
    /// Run nothing else against the registry meanwhile.
    /// </summary>
    public async Task<(T Result, UpstreamRequests Requests)> CountUpstreamAsync<T>(Func<Task<T>> work)
    {
        Registry.ClearAccessLog();
        var result = await work();
        await Registry.SyncAccessLogAsync();
        return (result, UpstreamRequests.From(Registry.AccessLog));
    }

    /// <summary>Removes a seeded blob from the registry's storage (disk space).</summary>
    public void DropBlob(string name)
    {
        if (_blobs.Remove(name, out var blob))
        {
            File.Delete(blob.StoragePath);
        }
    }

    public static string Repository(string name) => $"bench/{name}";

    public string BlobUrl(string name, SeededBlob blob) => $"https://{Registry.Authority}/v2/{Repository(name)}/blobs/{blob.Digest}";

    public string ManifestUrl(string name) => $"https://{Registry.Authority}/v2/{Repository(name)}/manifests/latest";

    /// <summary>The same file on nginx: <c>https://registry.test:NGINXPORT/NAME</c>.</summary>
    public string NginxUrl(string name) => $"https://{Hosts.Registry}:{Nginx.Port}/{name}";

    public CurlRoute NginxRoute => CurlRoute.Direct(Pki.CaCertPath, Hosts.Registry, Nginx.Port, Nginx.Port);

    public CurlRoute RegistryRoute => CurlRoute.Direct(Pki.CaCertPath, Hosts.Registry, Registry.Port, Registry.Port);

    /// <summary>A proxy with a fresh data directory, intercepting registry.test and *.bench.test (the latter dialled to nginx).</summary>
    /// <param name="upstreamCa">The roots it trusts upstream: the test CA unless told otherwise (a child of the cluster tier also trusts its parents').</param>
    /// <param name="arguments">More options (<c>--blob-store</c>, <c>--upstream-proxy</c>, <c>--instance-name</c>, ...), and <paramref name="env"/> more variables (its keys).</param>
    public Task<ProxyRunner> StartProxyAsync(string? dataDirectory = null, string? upstreamCa = null, IEnumerable<string>? arguments = null, IReadOnlyDictionary<string, string>? env = null)
    {
        var data = dataDirectory ?? Dir.Combine($"proxy-{Interlocked.Increment(ref _proxyCount)}");
        var environment = ProxyEnvironment();
        foreach (var (name, value) in env ?? new Dictionary<string, string>())
        {
            environment[name] = value;
        }

        return ProxyRunner.StartAsync(Options.ProxyDll, data,
        [
            "--no-default-intercept",
            "--intercept", $"{Hosts.Registry},*.{BenchDomain}",
            "--allow-port", Registry.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--upstream-ca", upstreamCa ?? Pki.CaCertPath,
            "--connect-to", $"{Hosts.Registry}:{Registry.Port}:127.0.0.1:{Registry.Port},:443:127.0.0.1:{Nginx.Port}",
            .. arguments ?? [],
        ], environment);
    }

    /// <summary>The proxy process's extra environment (<c>--proxy-env</c>, perf's JIT maps); the bare Kestrel of scenario 5 gets it too.</summary>
    public Dictionary<string, string?> ProxyEnvironment()
    {
        var env = Options.ProxyEnvironment.ToDictionary(e => e.Key, e => (string?)e.Value);
        if (Options.PerfDirectory is not null)
        {
            env["DOTNET_PerfMapEnabled"] = "1";
            env["DOTNET_EnableWriteXorExecute"] = "0";
        }

        return env;
    }

    /// <summary>Stops a proxy and deletes its data directory (cold runs would fill the disk otherwise).</summary>
    public static void DiscardProxy(ProxyRunner proxy)
    {
        proxy.Dispose();
        try
        {
            Directory.Delete(proxy.DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>
    /// Fetches the repository's manifest anonymously through the proxy, as every real client does first:
    /// the proxy then knows the repository is public and serves its cached blobs without asking upstream.
    /// </summary>
    public async Task ResolveManifestAsync(ProxyRunner proxy, string name)
    {
        var result = await CurlFetch.GetAsync(ManifestUrl(name), CurlRoute.ViaProxy(proxy), http2: false, expectedBytes: -1,
            ["-H", $"Accept: {MitmCache.Tests.Common.MediaTypes.OciManifest}"]);
        if (result.Status != 200)
        {
            throw new InvalidOperationException($"manifest of {name} through the proxy: {result.Status} {result.Error}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        Nginx.Dispose();
        await Registry.DisposeAsync();
        Dir.Dispose();
    }
}
