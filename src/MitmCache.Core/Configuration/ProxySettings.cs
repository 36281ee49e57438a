using System.Net;

namespace MitmCache.Configuration;

/// <summary>Validated, immutable settings the proxy runs with.</summary>
public sealed record ProxySettings
{
    public required IPEndPoint Listen { get; init; }
    public IPEndPoint? MetricsListen { get; init; }
    public required string DataDirectory { get; init; }
    public required IReadOnlyList<string> Intercept { get; init; }
    public required IReadOnlySet<int> AllowedPorts { get; init; }
    public string? UpstreamCaFile { get; init; }
    public IReadOnlyList<ConnectToRule> ConnectTo { get; init; } = [];
    public Uri? UpstreamProxy { get; init; }
    public IReadOnlyList<IPNetwork> AllowedClients { get; init; } = [];

    /// <summary>Internal networks an upstream's redirect may lead to (<c>--allow-upstream-network</c>).</summary>
    public IReadOnlyList<IPNetwork> AllowedUpstreamNetworks { get; init; } = [];
    public string? ProxyAuth { get; init; }
    public bool JsonLogs { get; init; }
    public Serilog.Events.LogEventLevel LogLevel { get; init; } = Serilog.Events.LogEventLevel.Information;
    public long MaxCacheBytes { get; init; } = 20L << 30;
    public ManifestPolicy ManifestPolicy { get; init; } = ManifestPolicy.UpstreamFirst;
    public TimeSpan ManifestTtl { get; init; } = TimeSpan.FromMinutes(5);
    public TimeSpan UpstreamTimeout { get; init; } = TimeSpan.FromSeconds(10);
    public TimeSpan OfflineGrantWindow { get; init; } = TimeSpan.FromDays(7);
    public CacheFailureMode OnCacheFailure { get; init; } = CacheFailureMode.Fail;
    public VerifyOnRead VerifyOnRead { get; init; } = VerifyOnRead.Sample;
    public IReadOnlyDictionary<string, string> RegistryCredentials { get; init; } = new Dictionary<string, string>();
    public TimeSpan HeaderTimeout { get; init; } = TimeSpan.FromSeconds(10);
    public TimeSpan TunnelIdleTimeout { get; init; } = TimeSpan.FromMinutes(10);
    public int MaxConnections { get; init; } = 10_000;
    public int MaxConnectionsPerClient { get; init; } = 1_000;

    /// <summary>The registries and token hosts intercepted unless told otherwise.</summary>
    public static IReadOnlyList<string> DefaultIntercept { get; } =
    [
        "registry-1.docker.io", "auth.docker.io", "ghcr.io", "quay.io", "registry.k8s.io",
        "gcr.io", "*.pkg.dev", "mcr.microsoft.com", "public.ecr.aws", "nvcr.io",
    ];

    public string CaDirectory => Path.Combine(DataDirectory, "ca");
}

public enum VerifyOnRead
{
    Never,
    /// <summary>One whole-blob read in 16.</summary>
    Sample,
    Always,
}

public enum CacheFailureMode
{
    /// <summary>Refuse to start with a clear error.</summary>
    Fail,
    /// <summary>Start anyway and relay registry traffic without caching new content.</summary>
    Passthrough,
}

public enum ManifestPolicy
{
    /// <summary>Ask upstream first; serve the cached copy when it fails, times out, 5xx or 429.</summary>
    UpstreamFirst,
    /// <summary>Serve a cached tag without asking upstream while it is younger than the TTL.</summary>
    Ttl,
    /// <summary>Never ask upstream for tags that are cached.</summary>
    Offline,
}

/// <summary>A curl-style <c>--connect-to HOST:PORT:ADDR:PORT2</c> rule; empty HOST or PORT match any.</summary>
public sealed record ConnectToRule(string Host, int? Port, string Address, int TargetPort)
{
    public bool Matches(string host, int port) =>
        (Host.Length == 0 || string.Equals(Host, host, StringComparison.OrdinalIgnoreCase)) && (Port is null || Port == port);
}
