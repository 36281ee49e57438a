using System.Globalization;
using System.Net;
using Serilog.Events;

namespace MitmCache.Configuration;

/// <summary>
/// Turns <see cref="ProxyOptions"/> into <see cref="ProxySettings"/>, collecting every problem so an
/// operator fixes them all in one go (BaGet's ValidateStartupOptions does the same).
/// </summary>
public static class SettingsValidator
{
    public static ProxySettings? Validate(ProxyOptions options, List<string> errors)
    {
        var start = errors.Count;

        if (!ValueParsers.TryParseEndpoint(options.Listen, out var listen))
        {
            errors.Add($"--listen '{options.Listen}': expected ADDRESS:PORT such as 127.0.0.1:3128 or [::1]:3128");
        }

        IPEndPoint? metricsListen = null;
        if (!string.IsNullOrEmpty(options.MetricsListen)
            && !ValueParsers.TryParseEndpoint(options.MetricsListen, out metricsListen))
        {
            errors.Add($"--metrics-listen '{options.MetricsListen}': expected ADDRESS:PORT such as 127.0.0.1:9128 or [::]:9128");
        }
        else if (metricsListen is not null && listen is not null && metricsListen.Port == listen.Port && metricsListen.Port != 0
            && (metricsListen.Address.Equals(listen.Address) || IsAny(metricsListen.Address) || IsAny(listen.Address)))
        {
            errors.Add($"--metrics-listen {metricsListen}: the same port as --listen {listen}; pick another port");
        }

        if (string.IsNullOrWhiteSpace(options.Data))
        {
            errors.Add("--data: a data directory is required");
        }

        var intercept = new List<string>();
        if (options.NoDefaultIntercept != true)
        {
            intercept.AddRange(ProxySettings.DefaultIntercept);
        }

        foreach (var pattern in options.Intercept ?? [])
        {
            var normalized = pattern.Trim().ToLowerInvariant();
            if (!Tunneling.HostPolicy.IsValidPattern(normalized))
            {
                errors.Add($"--intercept '{pattern}': expected a host name or *.domain");
            }
            else if (!intercept.Contains(normalized))
            {
                intercept.Add(normalized);
            }
        }

        var ports = new HashSet<int> { 443 };
        foreach (var text in options.AllowPort ?? [])
        {
            if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is > 0 and <= 65535)
            {
                ports.Add(port);
            }
            else
            {
                errors.Add($"--allow-port '{text}': expected a port number 1-65535");
            }
        }

        if (options.UpstreamCa is { } caFile && !File.Exists(caFile))
        {
            errors.Add($"--upstream-ca '{caFile}': file not found");
        }

        var connectTo = new List<ConnectToRule>();
        foreach (var text in options.ConnectTo ?? [])
        {
            if (TryParseConnectTo(text, out var rule))
            {
                connectTo.Add(rule);
            }
            else
            {
                errors.Add($"--connect-to '{text}': expected HOST:PORT:ADDRESS:PORT2 (e.g. registry.test:443:127.0.0.1:5000)");
            }
        }

        Uri? upstreamProxy = null;
        if (!string.IsNullOrWhiteSpace(options.UpstreamProxy))
        {
            if (!Uri.TryCreate(options.UpstreamProxy, UriKind.Absolute, out upstreamProxy) || upstreamProxy.Scheme != "http" || upstreamProxy.AbsolutePath != "/")
            {
                errors.Add($"--upstream-proxy '{options.UpstreamProxy}': expected http://HOST:PORT");
            }
        }

        var clients = Networks("--allow-client", options.AllowClient, errors);
        var upstreamNetworks = Networks("--allow-upstream-network", options.AllowUpstreamNetwork, errors);

        if (options.ProxyAuth is { } auth && (auth.IndexOf(':') <= 0 || auth.EndsWith(':')))
        {
            errors.Add("--proxy-auth: expected USER:PASSWORD");
        }

        var jsonLogs = false;
        switch (options.LogFormat?.ToLowerInvariant())
        {
            case "plain" or null:
                break;
            case "json":
                jsonLogs = true;
                break;
            default:
                errors.Add($"--log-format '{options.LogFormat}': expected plain or json");
                break;
        }

        var level = LogEventLevel.Information;
        if (options.LogLevel is { } levelText
            && (!Enum.TryParse(levelText, ignoreCase: true, out level) || !Enum.IsDefined(level) || char.IsAsciiDigit(levelText.TrimStart('-')[0])))
        {
            errors.Add($"--log-level '{levelText}': expected verbose, debug, information, warning or error");
        }

        if (!ValueParsers.TryParseSize(options.MaxCacheSize, out var maxCache) || maxCache < 1 << 20)
        {
            errors.Add($"--max-cache-size '{options.MaxCacheSize}': expected a size of at least 1MiB such as 50GiB");
        }

        var policy = options.ManifestPolicy?.ToLowerInvariant() switch
        {
            "upstream-first" or null => ManifestPolicy.UpstreamFirst,
            "ttl" => ManifestPolicy.Ttl,
            "offline" => ManifestPolicy.Offline,
            _ => (ManifestPolicy?)null,
        };
        if (policy is null)
        {
            errors.Add($"--manifest-policy '{options.ManifestPolicy}': expected upstream-first, ttl or offline");
        }

        if (!ValueParsers.TryParseDuration(options.ManifestTtl, out var ttl))
        {
            errors.Add($"--manifest-ttl '{options.ManifestTtl}': expected a duration such as 5m");
        }

        if (!ValueParsers.TryParseDuration(options.UpstreamTimeout, out var timeout) || timeout <= TimeSpan.Zero)
        {
            errors.Add($"--upstream-timeout '{options.UpstreamTimeout}': expected a positive duration such as 10s");
        }

        if (!ValueParsers.TryParseDuration(options.OfflineGrantWindow, out var grantWindow))
        {
            errors.Add($"--offline-grant-window '{options.OfflineGrantWindow}': expected a duration such as 7d (0 disables offline private pulls)");
        }

        var onCacheFailure = options.OnCacheFailure?.ToLowerInvariant() switch
        {
            "fail" or null => CacheFailureMode.Fail,
            "passthrough" or "pass-through" => CacheFailureMode.Passthrough,
            _ => (CacheFailureMode?)null,
        };
        if (onCacheFailure is null)
        {
            errors.Add($"--on-cache-failure '{options.OnCacheFailure}': expected fail or passthrough");
        }

        VerifyOnRead? verifyOnRead = options.VerifyOnRead?.ToLowerInvariant() switch
        {
            "never" => VerifyOnRead.Never,
            "sample" or null => VerifyOnRead.Sample,
            "always" => VerifyOnRead.Always,
            _ => null,
        };
        if (verifyOnRead is null)
        {
            errors.Add($"--verify-on-read '{options.VerifyOnRead}': expected never, sample or always");
        }

        if (!ValueParsers.TryParseDuration(options.HeaderTimeout, out var headerTimeout) || headerTimeout <= TimeSpan.Zero)
        {
            errors.Add($"--header-timeout '{options.HeaderTimeout}': expected a positive duration such as 10s");
        }

        if (!ValueParsers.TryParseDuration(options.TunnelIdleTimeout, out var tunnelIdle) || tunnelIdle <= TimeSpan.Zero)
        {
            errors.Add($"--tunnel-idle-timeout '{options.TunnelIdleTimeout}': expected a positive duration such as 10m");
        }

        if (!int.TryParse(options.MaxConnections, NumberStyles.None, CultureInfo.InvariantCulture, out var maxConnections) || maxConnections < 1)
        {
            errors.Add($"--max-connections '{options.MaxConnections}': expected a whole number of at least 1 such as 10000");
        }

        if (!int.TryParse(options.MaxConnectionsPerClient, NumberStyles.None, CultureInfo.InvariantCulture, out var maxPerClient) || maxPerClient < 1)
        {
            errors.Add($"--max-connections-per-client '{options.MaxConnectionsPerClient}': expected a whole number of at least 1 such as 1000");
        }

        var credentials = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var text in options.RegistryCredential ?? [])
        {
            var equals = text.IndexOf('=');
            var colon = equals < 0 ? -1 : text.IndexOf(':', equals);
            if (equals <= 0 || colon <= equals + 1)
            {
                errors.Add("--registry-credential: expected HOST=USER:PASSWORD (value not shown)");
                continue;
            }

            credentials[text[..equals].ToLowerInvariant()] = text[(equals + 1)..];
        }

        if (listen is not null && !IPAddress.IsLoopback(listen.Address) && clients.Count == 0 && options.ProxyAuth is null)
        {
            errors.Add($"--listen {listen}: refusing to run an open proxy on a non-loopback address. " +
                "Add --allow-client CIDR (for example your node network) and/or --proxy-auth USER:PASSWORD.");
        }

        if (errors.Count > start)
        {
            return null;
        }

        return new ProxySettings
        {
            Listen = listen!,
            MetricsListen = metricsListen,
            DataDirectory = Path.GetFullPath(options.Data!),
            Intercept = intercept,
            AllowedPorts = ports,
            UpstreamCaFile = options.UpstreamCa is null ? null : Path.GetFullPath(options.UpstreamCa),
            ConnectTo = connectTo,
            UpstreamProxy = upstreamProxy,
            AllowedClients = clients,
            AllowedUpstreamNetworks = upstreamNetworks,
            ProxyAuth = options.ProxyAuth,
            JsonLogs = jsonLogs,
            LogLevel = level,
            MaxCacheBytes = maxCache,
            ManifestPolicy = policy!.Value,
            ManifestTtl = ttl,
            UpstreamTimeout = timeout,
            OfflineGrantWindow = grantWindow,
            OnCacheFailure = onCacheFailure!.Value,
            VerifyOnRead = verifyOnRead!.Value,
            RegistryCredentials = credentials,
            HeaderTimeout = headerTimeout,
            TunnelIdleTimeout = tunnelIdle,
            MaxConnections = maxConnections,
            MaxConnectionsPerClient = maxPerClient,
        };
    }

    /// <summary>CIDRs such as <c>10.0.0.0/8</c>, or single addresses.</summary>
    private static List<IPNetwork> Networks(string option, string[]? values, List<string> errors)
    {
        var networks = new List<IPNetwork>();
        foreach (var text in values ?? [])
        {
            if (IPNetwork.TryParse(text, out var network) || (IPAddress.TryParse(text, out var single) && (network = new IPNetwork(single, single.GetAddressBytes().Length * 8)) != default))
            {
                networks.Add(network);
            }
            else
            {
                errors.Add($"{option} '{text}': expected a CIDR such as 10.0.0.0/8");
            }
        }

        return networks;
    }

    private static bool IsAny(IPAddress address) => address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any);

    public static bool TryParseConnectTo(string text, out ConnectToRule rule)
    {
        rule = null!;
        // HOST:PORT:ADDR:PORT2 where ADDR may be [v6]. Split from both ends to keep brackets intact.
        var first = text.IndexOf(':');
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
