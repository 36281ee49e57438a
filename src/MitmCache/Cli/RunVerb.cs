using CommandLine;

namespace MitmCache.Cli;

/// <summary>
/// <c>mitmcache run</c>. Property names match <see cref="Configuration.ProxyOptions"/>, so a flag that is
/// given overrides the environment and the config file (see <see cref="Configuration.OptionLayers"/>).
/// Defaults live in ProxyOptions, not here, so that an absent flag never hides a file or env value.
/// </summary>
[Verb("run", isDefault: true, HelpText = "Run the proxy.")]
internal sealed class RunVerb
{
    [Option("config", HelpText = "JSON config file (keys as camelCase option names). Env: MITMCACHE_CONFIG.")]
    public string? Config { get; set; }

    [Option("listen", HelpText = "ADDRESS:PORT to listen on. Default 127.0.0.1:3128.")]
    public string? Listen { get; set; }

    [Option("metrics-listen", HelpText = "ADDRESS:PORT serving only /metrics, /healthz and /readyz (for a scraper that is not a proxy client). Default none.")]
    public string? MetricsListen { get; set; }

    [Option("data", HelpText = "Data directory (CA, cache, index). Default ./mitmcache-data.")]
    public string? Data { get; set; }

    [Option("intercept", Separator = ',', HelpText = "Extra hosts to intercept (exact or *.domain), repeatable, added to the built-in registries.")]
    public IEnumerable<string> Intercept { get; set; } = [];

    [Option("no-default-intercept", HelpText = "Intercept only the --intercept hosts, not the built-in registries.")]
    public bool NoDefaultIntercept { get; set; }

    [Option("allow-port", Separator = ',', HelpText = "CONNECT ports allowed besides 443 (e.g. 5000,8443).")]
    public IEnumerable<string> AllowPort { get; set; } = [];

    [Option("upstream-ca", HelpText = "PEM bundle trusted for upstream TLS in addition to the system roots.")]
    public string? UpstreamCa { get; set; }

    [Option("connect-to", Separator = ',', HelpText = "HOST:PORT:ADDRESS:PORT2 connection override, like curl's --connect-to. Repeatable.")]
    public IEnumerable<string> ConnectTo { get; set; } = [];

    [Option("upstream-proxy", HelpText = "Parent proxy for all upstream traffic, http://HOST:PORT.")]
    public string? UpstreamProxy { get; set; }

    [Option("allow-upstream-network", Separator = ',', HelpText = "Internal network (CIDR) an upstream's redirect may lead to, repeatable (e.g. a registry's storage on 10.0.0.0/8). Default none: redirects to loopback and private addresses are refused.")]
    public IEnumerable<string> AllowUpstreamNetwork { get; set; } = [];

    [Option("allow-client", Separator = ',', HelpText = "Client network allowed to use the proxy (CIDR), repeatable. Loopback is always allowed.")]
    public IEnumerable<string> AllowClient { get; set; } = [];

    [Option("proxy-auth", HelpText = "Require Proxy-Authorization Basic USER:PASSWORD (prefer MITMCACHE_PROXY_AUTH: flags show in ps).")]
    public string? ProxyAuth { get; set; }

    [Option("log-format", HelpText = "plain (default) or json.")]
    public string? LogFormat { get; set; }

    [Option("log-level", HelpText = "verbose, debug, information (default), warning, error.")]
    public string? LogLevel { get; set; }

    [Option("max-cache-size", HelpText = "Cache size cap, e.g. 50GiB (default 20GiB). LRU eviction.")]
    public string? MaxCacheSize { get; set; }

    [Option("manifest-policy", HelpText = "Tags: upstream-first (default), ttl or offline.")]
    public string? ManifestPolicy { get; set; }

    [Option("manifest-ttl", HelpText = "With --manifest-policy ttl: serve tags without asking upstream for this long (default 5m).")]
    public string? ManifestTtl { get; set; }

    [Option("upstream-timeout", HelpText = "Wait this long for an upstream answer before serving from cache (default 10s).")]
    public string? UpstreamTimeout { get; set; }

    [Option("offline-grant-window", HelpText = "How long upstream's yes to a credential lets it pull that private repository while upstream is down (default 7d).")]
    public string? OfflineGrantWindow { get; set; }

    [Option("on-cache-failure", HelpText = "If the data directory cannot hold the cache at start-up: fail (default) or passthrough.")]
    public string? OnCacheFailure { get; set; }

    [Option("verify-on-read", HelpText = "Re-hash cached blobs as they are served: never, sample (default, 1 in 16) or always.")]
    public string? VerifyOnRead { get; set; }

    [Option("registry-credential", Separator = ',', HelpText = "HOST=USER:PASSWORD used only when a client sends no credentials. Repeatable.")]
    public IEnumerable<string> RegistryCredential { get; set; } = [];

    [Option("header-timeout", HelpText = "A client must send its CONNECT head, finish TLS and send each request's headers within this (default 10s).")]
    public string? HeaderTimeout { get; set; }

    [Option("tunnel-idle-timeout", HelpText = "Close a blind tunnel after this long without a byte either way (default 10m).")]
    public string? TunnelIdleTimeout { get; set; }

    [Option("max-connections", HelpText = "Open client connections at most; more get 503 (default 10000).")]
    public string? MaxConnections { get; set; }

    [Option("max-connections-per-client", HelpText = "Open connections from one client address at most; more get 503 (default 1000).")]
    public string? MaxConnectionsPerClient { get; set; }
}
