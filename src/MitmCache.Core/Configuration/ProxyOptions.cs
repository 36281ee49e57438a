namespace MitmCache.Configuration;

/// <summary>
/// The raw, bindable options of <c>mitmcache run</c>. Every property can come from a JSON file
/// (camelCase key), an environment variable (<c>MITMCACHE_</c> + SCREAMING_SNAKE name, lists
/// comma-separated) or a command-line flag (kebab-case). Precedence: flags &gt; env &gt; file.
/// <see cref="SettingsValidator"/> turns this into an immutable, checked <see cref="ProxySettings"/>.
/// </summary>
public sealed class ProxyOptions
{
    /// <summary>Address and port to listen on. Default <c>127.0.0.1:3128</c>.</summary>
    public string? Listen { get; set; } = "127.0.0.1:3128";

    /// <summary>
    /// A second address serving only <c>/metrics</c>, <c>/healthz</c> and <c>/readyz</c>, so a scraper can reach
    /// them without being a proxy client. Default none: they are served on the proxy port only.
    /// </summary>
    public string? MetricsListen { get; set; }

    /// <summary>Data directory (CA, cache, index). Default <c>./mitmcache-data</c>.</summary>
    public string? Data { get; set; } = "mitmcache-data";

    /// <summary>Extra hosts to intercept, exact names or <c>*.suffix</c>, added to the built-in registries.</summary>
    public string[]? Intercept { get; set; }

    /// <summary>Drop the built-in registry list, intercepting only <see cref="Intercept"/>. Default false.</summary>
    public bool? NoDefaultIntercept { get; set; }

    /// <summary>CONNECT ports allowed besides 443 (e.g. 5000, 8443).</summary>
    public string[]? AllowPort { get; set; }

    /// <summary>PEM bundle trusted for upstream TLS, in addition to the system roots.</summary>
    public string? UpstreamCa { get; set; }

    /// <summary>Connection overrides <c>HOST:PORT:ADDR:PORT2</c>, like curl's <c>--connect-to</c>.</summary>
    public string[]? ConnectTo { get; set; }

    /// <summary>Parent HTTP proxy for all upstream traffic, <c>http://host:port</c>.</summary>
    public string? UpstreamProxy { get; set; }

    /// <summary>
    /// Internal networks (CIDR) an upstream's redirect may send the proxy to, e.g. a registry whose storage
    /// is on a private address. Default none: redirects to loopback and private ranges are refused
    /// (addresses named by <see cref="ConnectTo"/> are the operator's own choice and always allowed).
    /// </summary>
    public string[]? AllowUpstreamNetwork { get; set; }

    /// <summary>Client networks allowed to use the proxy (CIDR). Loopback is always allowed.</summary>
    public string[]? AllowClient { get; set; }

    /// <summary>Require <c>Proxy-Authorization: Basic</c> with this <c>user:password</c>.</summary>
    public string? ProxyAuth { get; set; }

    /// <summary><c>plain</c> (default) or <c>json</c>.</summary>
    public string? LogFormat { get; set; } = "plain";

    /// <summary>Minimum log level: verbose, debug, information (default), warning, error.</summary>
    public string? LogLevel { get; set; } = "information";

    /// <summary>Cache size cap, e.g. <c>50GiB</c>. Default <c>20GiB</c>; least recently used blobs go first.</summary>
    public string? MaxCacheSize { get; set; } = "20GiB";

    /// <summary>Tag manifests: <c>upstream-first</c> (default), <c>ttl</c> or <c>offline</c>.</summary>
    public string? ManifestPolicy { get; set; } = "upstream-first";

    /// <summary>With <c>ttl</c>: how long a tag is served without asking upstream. Default <c>5m</c>.</summary>
    public string? ManifestTtl { get; set; } = "5m";

    /// <summary>How long to wait for upstream response headers before serving stale. Default <c>10s</c>.</summary>
    public string? UpstreamTimeout { get; set; } = "10s";

    /// <summary>How long a credential that upstream authorized may pull that private repository while upstream is unreachable. Default <c>7d</c>.</summary>
    public string? OfflineGrantWindow { get; set; } = "7d";

    /// <summary>When the data directory cannot hold the cache at start-up: <c>fail</c> (default) or <c>passthrough</c> (proxy without caching).</summary>
    public string? OnCacheFailure { get; set; } = "fail";

    /// <summary>Re-hash cached blobs as they are served: <c>never</c>, <c>sample</c> (default, 1 read in 16) or <c>always</c>. Manifests are always re-hashed.</summary>
    public string? VerifyOnRead { get; set; } = "sample";

    /// <summary>Per-registry fallback credentials <c>HOST=USER:PASS</c>, used only when a client sends none.</summary>
    public string[]? RegistryCredential { get; set; }

    /// <summary>
    /// How long a client may take to send a CONNECT head, to finish the TLS handshake inside an
    /// intercepted tunnel, or to send a request's headers. Default <c>10s</c>; bounds slowloris clients.
    /// </summary>
    public string? HeaderTimeout { get; set; } = "10s";

    /// <summary>A blind tunnel with no bytes in either direction for this long is closed. Default <c>10m</c>.</summary>
    public string? TunnelIdleTimeout { get; set; } = "10m";

    /// <summary>Open client connections at most; more are refused with 503. Default <c>10000</c>.</summary>
    public string? MaxConnections { get; set; } = "10000";

    /// <summary>Open connections from one client address at most; more are refused with 503. Default <c>1000</c>.</summary>
    public string? MaxConnectionsPerClient { get; set; } = "1000";
}
