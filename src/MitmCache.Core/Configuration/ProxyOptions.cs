using System.Globalization;
using System.Net;
using MitmCache.Tunneling;
using Serilog.Events;

namespace MitmCache.Configuration;

/// <summary>
/// Every option of <c>mitmcache run</c>, each defined once: its flag, environment variable and config file
/// key come from its name, its validation from its kind, and its default and help make the documented
/// table (<c>mitmcache help options --markdown</c>, docs/configuration.md). Adding an option is one entry
/// here (and the <see cref="ProxySettings"/> property it fills): see docs/design.md, "Adding an option".
/// Options bind in the order of <see cref="All"/>.
/// </summary>
public static class ProxyOptions
{
    public static readonly Option<string?> Config = Option.Text<string>("config", "FILE",
        "JSON file of options, keys in camelCase (`{\"maxCacheSize\": \"50GiB\", \"allowClient\": [\"10.0.0.0/8\"]}`); flags and the environment override it",
        ParseFileName, (s, _) => s, inConfigFile: false); // read by OptionSources, before every other option

    public static readonly Option<IPEndPoint> Listen = Option.Endpoint("listen", "127.0.0.1:3128",
        "address to listen on; `:3128` for all interfaces", (s, v) => s with { Listen = v });

    public static readonly Option<IPEndPoint?> MetricsListen = Option.OptionalEndpoint("metrics-listen",
        "a second, plain-HTTP address answering only `/metrics`, `/healthz` and `/readyz`, for a scraper that should not be a proxy client; nothing else is served there (no proxying, no CA, no admin)",
        (s, v) => s with { MetricsListen = v });

    public static readonly Option<string> Data = new("data", OptionArity.Single, "DIR", "./mitmcache-data",
        "CA, blob store, LiteDB index", ParseDirectory, (s, v) => s with { DataDirectory = v }, "");

    // Before --intercept: it empties the built-in list that --intercept then adds to.
    public static readonly Option<bool> NoDefaultIntercept = Option.Switch("no-default-intercept",
        "intercept only the `--intercept` hosts, not the built-in registries", (s, v) => v ? s with { Intercept = [] } : s);

    public static readonly ListOption<string> Intercept = Option.List<string>("intercept", "HOST",
        "more hosts to intercept (exact or `*.domain`), added to the built-in registries", ParseHostPattern,
        (s, v) => s with { Intercept = [.. s.Intercept.Union(v, StringComparer.Ordinal)] }, documentedDefault: "built-in registry list");

    public static readonly ListOption<int> AllowPort = Option.List<int>("allow-port", "PORT",
        "more CONNECT ports (registries on 5000 and 8443 are common)", ParsePort,
        (s, v) => s with { AllowedPorts = new HashSet<int>([ProxySettings.HttpsPort, .. v]) }, documentedDefault: "443 only");

    public static readonly Option<string?> UpstreamCa = Option.Text<string>("upstream-ca", "FILE",
        "extra PEM roots trusted for upstream TLS", Option.ParsePemBundle, (s, v) => s with { UpstreamCaFile = v }, documentedDefault: "system roots");

    public static readonly ListOption<ConnectToRule> ConnectTo = Option.List<ConnectToRule>("connect-to", "HOST:PORT:ADDRESS:PORT2",
        "dial `ADDRESS:PORT2` for `HOST:PORT`, like curl (split horizon, tests)", ParseConnectTo, (s, v) => s with { ConnectTo = v });

    public static readonly ListOption<Uri> UpstreamProxy = Option.List<Uri>("upstream-proxy", "http://HOST:PORT",
        "parent proxies (the cluster tier, docs/cluster.md) for all upstream connections (CONNECT); each blob goes to the parent its digest ranks first on, each repository's manifests, tags and tokens to the one its name ranks first on, the rest to the first parent up; a parent that fails hands over to the next, then to the upstream itself. Targets are still resolved and checked by MitmCache first",
        ParseProxyUri, (s, v) => s with { UpstreamProxies = v });

    public static readonly Option<bool> NoDirectFallback = Option.Switch("no-direct-fallback",
        "with `--upstream-proxy`: never connect to an upstream directly, even when every parent is down (sites where the parents are the only way out)",
        (s, v) => s with { DirectFallback = !v });

    public static readonly Option<string?> InstanceName = Option.Text<string>("instance-name", "NAME",
        "this proxy's name in the `Via` header it adds to requests it sends to a parent; a request that already names it is refused (a loop). Unique per proxy", ParseInstanceName,
        (s, v) => v is null ? s : s with { InstanceName = v }, documentedDefault: "host name and a random suffix, new at each start");

    public static readonly ListOption<IPNetwork> AllowUpstreamNetwork = Option.List<IPNetwork>("allow-upstream-network", "CIDR",
        "internal networks an upstream's redirect may send the proxy to (a registry whose storage is on a private address); redirects to loopback and private ranges are refused otherwise, and `--connect-to` addresses are always allowed",
        ParseNetwork, (s, v) => s with { AllowedUpstreamNetworks = v }, documentedDefault: "none");

    public static readonly ListOption<IPNetwork> AllowClient = Option.List<IPNetwork>("allow-client", "CIDR",
        "client networks allowed; loopback is always allowed", ParseNetwork, (s, v) => s with { AllowedClients = v }, documentedDefault: "loopback only");

    public static readonly Option<string?> ProxyAuth = Option.Text<string>("proxy-auth", "USER:PASSWORD",
        "require `Proxy-Authorization: Basic`; prefer `MITMCACHE_PROXY_AUTH` (flags show in `ps`)", ParseUserPassword,
        (s, v) => s with { ProxyAuth = v }, secret: true);

    public static readonly Option<bool> LogFormat = Option.Choice("log-format", "plain",
        "`plain` lines, or `json`: one object per line", (s, v) => s with { JsonLogs = v }, ("plain", false), ("json", true));

    public static readonly Option<LogEventLevel> LogLevel = Option.Choice("log-level", "information",
        "the least severe events logged", (s, v) => s with { LogLevel = v },
        ("verbose", LogEventLevel.Verbose), ("debug", LogEventLevel.Debug), ("information", LogEventLevel.Information),
        ("warning", LogEventLevel.Warning), ("error", LogEventLevel.Error), ("fatal", LogEventLevel.Fatal));

    public static readonly Option<long> MaxCacheSize = Option.Size("max-cache-size", "20GiB", 1 << 20, "1MiB",
        "size cap; least recently used blobs are evicted to 90%", (s, v) => s with { MaxCacheBytes = v });

    public static readonly Option<ManifestPolicy> ManifestPolicy = Option.Choice("manifest-policy", "upstream-first",
        "how tags are resolved: ask upstream first, serve a cached tag for `--manifest-ttl`, or never ask upstream for a cached tag",
        (s, v) => s with { ManifestPolicy = v },
        ("upstream-first", Configuration.ManifestPolicy.UpstreamFirst), ("ttl", Configuration.ManifestPolicy.Ttl), ("offline", Configuration.ManifestPolicy.Offline));

    public static readonly Option<TimeSpan> ManifestTtl = Option.Duration("manifest-ttl", "5m", positive: false,
        "with `--manifest-policy ttl`, how long a tag is served without asking upstream; also how long \"public\" stands before it is re-proven",
        (s, v) => s with { ManifestTtl = v });

    public static readonly Option<TimeSpan> ConnectTimeout = Option.Duration("connect-timeout", "2s", positive: true,
        "wait for a connection to an upstream (TCP and TLS; a name's addresses are tried in parallel); one that does not connect in time is marked down, and asked again only once a background probe gets an answer",
        (s, v) => s with { ConnectTimeout = v });

    public static readonly Option<TimeSpan> UpstreamTimeout = Option.Duration("upstream-timeout", "10s", positive: true,
        "wait for an upstream answer before serving from cache", (s, v) => s with { UpstreamTimeout = v });

    public static readonly Option<TimeSpan> OfflineGrantWindow = Option.Duration("offline-grant-window", "7d", positive: false,
        "how long upstream's yes lets a credential pull a private repository offline", (s, v) => s with { OfflineGrantWindow = v },
        note: " (0 disables offline private pulls)");

    public static readonly Option<CacheFailureMode> OnCacheFailure = Option.Choice("on-cache-failure", "fail",
        "data directory unusable at start-up: `fail`, or `passthrough` (proxy without caching)", (s, v) => s with { OnCacheFailure = v },
        ("fail", CacheFailureMode.Fail), ("passthrough", CacheFailureMode.Passthrough), ("pass-through", CacheFailureMode.Passthrough));

    public static readonly Option<VerifyOnRead> VerifyOnRead = Option.Choice("verify-on-read", "sample",
        "re-hash cached blobs as they are served: `never`, `sample` (1 in 16), `always`", (s, v) => s with { VerifyOnRead = v },
        ("never", Configuration.VerifyOnRead.Never), ("sample", Configuration.VerifyOnRead.Sample), ("always", Configuration.VerifyOnRead.Always));

    public static readonly ListOption<KeyValuePair<string, string>> RegistryCredential = Option.List<KeyValuePair<string, string>>("registry-credential",
        "HOST=USER:PASSWORD", "credentials for a registry, used only when a client sends none", ParseRegistryCredential,
        (s, v) => s with { RegistryCredentials = v.GroupBy(c => c.Key).ToDictionary(g => g.Key, g => g.Last().Value, StringComparer.OrdinalIgnoreCase) },
        secret: true);

    public static readonly Option<int> MaxConnections = Option.Count("max-connections", "10000",
        "open client connections at most; more get `503` with `Retry-After`", (s, v) => s with { MaxConnections = v });

    public static readonly Option<int> MaxConnectionsPerClient = Option.Count("max-connections-per-client", "1000",
        "open connections from one client address at most; more get `503`", (s, v) => s with { MaxConnectionsPerClient = v });

    public static readonly Option<TimeSpan> HeaderTimeout = Option.Duration("header-timeout", "10s", positive: true,
        "a client must send its CONNECT head, finish TLS inside the tunnel, and send each request's headers within this", (s, v) => s with { HeaderTimeout = v });

    public static readonly Option<TimeSpan> TunnelIdleTimeout = Option.Duration("tunnel-idle-timeout", "10m", positive: true,
        "a blind tunnel with no byte either way for this long is closed", (s, v) => s with { TunnelIdleTimeout = v });

    public static readonly Option<TimeSpan> ShutdownTimeout = Option.Duration("shutdown-timeout", "25s", positive: false,
        "on SIGTERM, stop accepting and wait this long for requests and cache fills in flight before cutting them (below the unit's `TimeoutStopSec=30`)",
        (s, v) => s with { ShutdownTimeout = v }, note: " (0 cuts them at once)");

    public static readonly Option<string?> BlobStore = Option.Text<string>("blob-store", "s3://BUCKET[/PREFIX]",
        "a bucket shared by the cluster's parents, a second level behind the local disk: committed blobs and manifests are uploaded in the background, a local miss looks there before upstream, and a dead bucket costs nothing but speed. Keys only from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` or `AWS_SHARED_CREDENTIALS_FILE`, never flags (docs/blob-store.md)",
        ParseText, (s, v) => s with { BlobStoreLocation = v });

    public static readonly Option<string?> S3Endpoint = Option.Text<string>("s3-endpoint", "URL",
        "with `--blob-store`, the S3 endpoint, path-style, scheme, host and port only (`http://127.0.0.1:7480`, `https://s3.eu-west-1.amazonaws.com`)",
        ParseText, (s, v) => s with { S3Endpoint = v });

    public static readonly Option<string?> S3Region = Option.Text<string>("s3-region", "REGION",
        "with `--blob-store`, the signing region (Ceph and Swift accept any name)", ParseText, (s, v) => s with { S3Region = v },
        documentedDefault: ObjectStore.BlobStoreSettings.DefaultRegion);

    /// <summary>Every option, in binding and documentation order.</summary>
    public static IReadOnlyList<OptionDefinition> All { get; } =
    [
        Config, Listen, MetricsListen, Data, NoDefaultIntercept, Intercept, AllowPort, UpstreamCa, ConnectTo, UpstreamProxy, NoDirectFallback, InstanceName,
        AllowUpstreamNetwork, AllowClient, ProxyAuth, LogFormat, LogLevel, MaxCacheSize, ManifestPolicy, ManifestTtl, ConnectTimeout, UpstreamTimeout, OfflineGrantWindow,
        OnCacheFailure, VerifyOnRead, RegistryCredential, MaxConnections, MaxConnectionsPerClient, HeaderTimeout, TunnelIdleTimeout,
        ShutdownTimeout, BlobStore, S3Endpoint, S3Region,
    ];

    /// <summary>
    /// Checks across options, once each has its value (what <c>IValidateOptions</c> does in the .NET options stack); returns the
    /// settings with what needs several options parsed (the blob store and its keys).
    /// </summary>
    public static ProxySettings Check(ProxySettings settings, List<string> errors)
    {
        CheckParents(settings, errors);
        var blobStore = ObjectStore.BlobStoreSettings.Parse(settings.BlobStoreLocation, settings.S3Endpoint, settings.S3Region, errors);
        if (blobStore is not null || !string.IsNullOrWhiteSpace(settings.BlobStoreLocation))
        {
            ObjectStore.S3Credentials.Resolve(settings.CredentialVariables, errors); // found now, or the start fails with every other problem
        }
        if (settings.MetricsListen is { } metrics && metrics.Port == settings.Listen.Port && metrics.Port != 0
            && (metrics.Address.Equals(settings.Listen.Address) || IsAny(metrics.Address) || IsAny(settings.Listen.Address)))
        {
            errors.Add($"--metrics-listen {metrics}: the same port as --listen {settings.Listen}; pick another port");
        }

        if (!IPAddress.IsLoopback(settings.Listen.Address) && settings.AllowedClients.Count == 0 && settings.ProxyAuth is null)
        {
            errors.Add($"--listen {settings.Listen}: refusing to run an open proxy on a non-loopback address. " +
                "Add --allow-client CIDR (for example your node network) and/or --proxy-auth USER:PASSWORD.");
        }

        return settings with { BlobStore = blobStore };
    }

    private static void CheckParents(ProxySettings settings, List<string> errors)
    {
        foreach (var twice in settings.UpstreamProxies.GroupBy(p => p.Authority, StringComparer.OrdinalIgnoreCase).Where(g => g.Count() > 1))
        {
            errors.Add($"--upstream-proxy {twice.Key} is given {twice.Count()} times; give each parent once");
        }

        if (!settings.DirectFallback && settings.UpstreamProxies.Count == 0)
        {
            errors.Add("--no-direct-fallback needs at least one --upstream-proxy: without parents, direct is the only way out");
        }
    }

    private static bool IsAny(IPAddress address) => address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any);

    private static bool ParseFileName(string text, out string? value, out string expected)
    {
        value = text;
        expected = "a file name";
        return text.Length > 0;
    }

    private static bool ParseText(string text, out string? value, out string expected)
    {
        value = text.Trim();
        expected = "a value";
        return value.Length > 0;
    }

    private static bool ParseDirectory(string text, out string value, out string expected)
    {
        expected = "a directory (it is created if missing)";
        value = string.IsNullOrWhiteSpace(text) ? "" : Path.GetFullPath(text);
        return value.Length > 0;
    }

    private static bool ParseHostPattern(string text, out string value, out string expected)
    {
        value = text.Trim().ToLowerInvariant();
        expected = "a host name or *.domain";
        return HostPolicy.IsValidPattern(value);
    }

    private static bool ParsePort(string text, out int value, out string expected)
    {
        expected = "a port number 1-65535";
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value is > 0 and <= 65535;
    }

    private static bool ParseConnectTo(string text, out ConnectToRule value, out string expected)
    {
        expected = "HOST:PORT:ADDRESS:PORT2 (e.g. registry.test:443:127.0.0.1:5000)";
        return ConnectToRule.TryParse(text, out value);
    }

    private static bool ParseProxyUri(string text, out Uri value, out string expected)
    {
        expected = "http://HOST:PORT";
        return Uri.TryCreate(text, UriKind.Absolute, out value!) && value.Scheme == Uri.UriSchemeHttp && value.AbsolutePath == "/"
            && value.UserInfo.Length == 0 && value.Query.Length == 0;
    }

    /// <summary>A <c>Via</c> pseudonym: an RFC 9110 token, so it can be matched exactly in a <c>Via</c> list.</summary>
    private static bool ParseInstanceName(string text, out string? value, out string expected)
    {
        value = text;
        expected = "a name of letters, digits, '-', '.' and '_' (at most 64)";
        return text.Length is > 0 and <= 64 && text.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_');
    }

    private static bool ParseNetwork(string text, out IPNetwork value, out string expected)
    {
        expected = "a CIDR such as 10.0.0.0/8";
        if (IPAddress.TryParse(text, out var single) && !text.Contains('/', StringComparison.Ordinal))
        {
            value = new IPNetwork(single, single.GetAddressBytes().Length * 8);
            return true;
        }

        return IPNetwork.TryParse(text, out value);
    }

    private static bool ParseUserPassword(string text, out string? value, out string expected)
    {
        value = text;
        expected = "USER:PASSWORD";
        return text.IndexOf(':', StringComparison.Ordinal) > 0 && !text.EndsWith(':');
    }

    private static bool ParseRegistryCredential(string text, out KeyValuePair<string, string> value, out string expected)
    {
        expected = "HOST=USER:PASSWORD";
        var equals = text.IndexOf('=', StringComparison.Ordinal);
        var colon = equals < 0 ? -1 : text.IndexOf(':', equals);
        value = equals > 0 && colon > equals + 1 ? new(text[..equals].ToLowerInvariant(), text[(equals + 1)..]) : default;
        return equals > 0 && colon > equals + 1;
    }
}
