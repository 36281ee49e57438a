using System.Globalization;
using System.Net;

namespace MitmCache.Configuration;

/// <summary>
/// Validated, immutable settings the proxy runs with. <see cref="ProxyOptions"/> defines each option and
/// fills these from flags, environment and config file; the defaults here are the options' own.
/// </summary>
public sealed record ProxySettings
{
    /// <summary>The CONNECT port always allowed.</summary>
    public const int HttpsPort = 443;

    public IPEndPoint Listen { get; init; } = ProxyOptions.Listen.Default;
    public IPEndPoint? MetricsListen { get; init; }
    public required string DataDirectory { get; init; }
    public IReadOnlyList<string> Intercept { get; init; } = DefaultIntercept;
    public IReadOnlySet<int> AllowedPorts { get; init; } = new HashSet<int> { HttpsPort };
    public string? UpstreamCaFile { get; init; }
    public IReadOnlyList<ConnectToRule> ConnectTo { get; init; } = [];

    /// <summary>The cluster tier's parents (<c>--upstream-proxy</c>), in the operator's order: the order of the fall-back for requests no key ranks.</summary>
    public IReadOnlyList<Uri> UpstreamProxies { get; init; } = [];

    /// <summary>False with <c>--no-direct-fallback</c>: when every parent fails, the request fails.</summary>
    public bool DirectFallback { get; init; } = !ProxyOptions.NoDirectFallback.Default;

    /// <summary>This proxy's <c>Via</c> pseudonym; unique per process unless the operator names it.</summary>
    public string InstanceName { get; init; } = DefaultInstanceName();
    public IReadOnlyList<IPNetwork> AllowedClients { get; init; } = [];

    /// <summary>Internal networks an upstream's redirect may lead to (<c>--allow-upstream-network</c>).</summary>
    public IReadOnlyList<IPNetwork> AllowedUpstreamNetworks { get; init; } = [];
    public string? ProxyAuth { get; init; }
    public bool JsonLogs { get; init; } = ProxyOptions.LogFormat.Default;
    public Serilog.Events.LogEventLevel LogLevel { get; init; } = ProxyOptions.LogLevel.Default;
    public long MaxCacheBytes { get; init; } = ProxyOptions.MaxCacheSize.Default;
    public ManifestPolicy ManifestPolicy { get; init; } = ProxyOptions.ManifestPolicy.Default;
    public TimeSpan ManifestTtl { get; init; } = ProxyOptions.ManifestTtl.Default;
    public TimeSpan ConnectTimeout { get; init; } = ProxyOptions.ConnectTimeout.Default;
    public TimeSpan UpstreamTimeout { get; init; } = ProxyOptions.UpstreamTimeout.Default;
    public TimeSpan OfflineGrantWindow { get; init; } = ProxyOptions.OfflineGrantWindow.Default;
    public CacheFailureMode OnCacheFailure { get; init; } = ProxyOptions.OnCacheFailure.Default;
    public VerifyOnRead VerifyOnRead { get; init; } = ProxyOptions.VerifyOnRead.Default;
    public IReadOnlyDictionary<string, string> RegistryCredentials { get; init; } = new Dictionary<string, string>();
    public TimeSpan HeaderTimeout { get; init; } = ProxyOptions.HeaderTimeout.Default;
    public TimeSpan TunnelIdleTimeout { get; init; } = ProxyOptions.TunnelIdleTimeout.Default;
    public int MaxConnections { get; init; } = ProxyOptions.MaxConnections.Default;
    public int MaxConnectionsPerClient { get; init; } = ProxyOptions.MaxConnectionsPerClient.Default;
    public TimeSpan ShutdownTimeout { get; init; } = ProxyOptions.ShutdownTimeout.Default;

    /// <summary><c>--blob-store s3://BUCKET[/PREFIX]</c> as given; parsed with the endpoint and region into <see cref="BlobStore"/>.</summary>
    public string? BlobStoreLocation { get; init; }
    public string? S3Endpoint { get; init; }
    public string? S3Region { get; init; }

    /// <summary>The S3 blob tier, checked (<see cref="ProxyOptions.Check"/>); null when there is none.</summary>
    internal ObjectStore.BlobStoreSettings? BlobStore { get; init; }

    /// <summary>
    /// Where the bucket's keys are read from (<see cref="ObjectStore.S3Credentials"/>): the environment the options were
    /// read from. Never a flag, never printed (not a public member, so not in the record's text).
    /// </summary>
    internal Func<string, string?> CredentialVariables { get; init; } = Environment.GetEnvironmentVariable;

    /// <summary>The registries and token hosts intercepted unless told otherwise.</summary>
    public static IReadOnlyList<string> DefaultIntercept { get; } =
    [
        "registry-1.docker.io", "auth.docker.io", "ghcr.io", "quay.io", "registry.k8s.io",
        "gcr.io", "*.pkg.dev", "mcr.microsoft.com", "public.ecr.aws", "nvcr.io",
    ];

    private static string DefaultInstanceName()
    {
        var host = new string([.. Environment.MachineName.Where(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_').Take(48)]);
        return $"{(host.Length > 0 ? host : "mitmcache")}-{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4))}";
    }

    /// <summary>Every path in <see cref="DataDirectory"/>.</summary>
    public DataLayout Layout => new(DataDirectory);
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

    /// <summary>Parses <c>HOST:PORT:ADDR:PORT2</c>, where ADDR may be <c>[v6]</c>; HOST and PORT may be empty.</summary>
    public static bool TryParse(string text, out ConnectToRule rule)
    {
        rule = null!;
        // Split from both ends to keep brackets intact.
        var first = text.IndexOf(':', StringComparison.Ordinal);
        var second = first < 0 ? -1 : text.IndexOf(':', first + 1);
        var last = text.LastIndexOf(':');
        if (first < 0 || second < 0 || last <= second)
        {
            return false;
        }

        var host = text[..first].ToLowerInvariant();
        var portText = text[(first + 1)..second];
        var address = text[(second + 1)..last].Trim('[', ']');
        int? port = null;
        if (portText.Length > 0)
        {
            if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var p) || p is < 1 or > 65535)
            {
                return false;
            }

            port = p;
        }

        if (address.Length == 0 || !int.TryParse(text.AsSpan(last + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var target) || target is < 1 or > 65535)
        {
            return false;
        }

        rule = new ConnectToRule(host, port, address, target);
        return true;
    }
}
