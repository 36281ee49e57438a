using System.Net;
using MitmCache.Configuration;
using MitmCache.Core.Tests.Certificates;
using Serilog.Events;

namespace MitmCache.Core.Tests.Configuration;

public class SettingsLoaderTests
{
    /// <summary>The options as flags only (no environment, no file), through the whole loader.</summary>
    internal static ProxySettings? Load(List<string> errors, params string[] flags) => SettingsLoader.Load(flags, new System.Collections.Hashtable(), errors);

    [Fact]
    public void Load_Defaults_ReturnsDocumentedSettings()
    {
        var errors = new List<string>();

        var settings = Load(errors);

        Assert.Empty(errors);
        Assert.NotNull(settings);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 3128), settings.Listen);
        Assert.Equal(Path.GetFullPath("mitmcache-data"), settings.DataDirectory);
        Assert.Equal(ProxySettings.DefaultIntercept, settings.Intercept);
        Assert.Equal([443], settings.AllowedPorts);
        Assert.Equal(20L << 30, settings.MaxCacheBytes);
        Assert.Equal(ManifestPolicy.UpstreamFirst, settings.ManifestPolicy);
        Assert.Equal(TimeSpan.FromMinutes(5), settings.ManifestTtl);
        Assert.Equal(TimeSpan.FromSeconds(10), settings.UpstreamTimeout);
        Assert.Equal(LogEventLevel.Information, settings.LogLevel);
        Assert.False(settings.JsonLogs);
        Assert.Empty(settings.AllowedClients);
        Assert.Empty(settings.ConnectTo);
        Assert.Null(settings.ProxyAuth);
        Assert.Empty(settings.UpstreamProxies);
        Assert.True(settings.DirectFallback);
        Assert.Null(settings.MetricsListen);
    }

    [Theory]
    [InlineData("127.0.0.1:3128", "127.0.0.1:9128", true)]
    [InlineData("127.0.0.1:3128", "[::]:9128", true)]
    [InlineData("127.0.0.1:3128", "127.0.0.2:3128", true)] // same port on another address
    [InlineData("127.0.0.1:3128", "127.0.0.1:3128", false)]
    [InlineData("127.0.0.1:3128", "0.0.0.0:3128", false)]
    [InlineData("127.0.0.1:3128", "metrics", false)]
    [InlineData("127.0.0.1:3128", "127.0.0.1:70000", false)]
    public void Load_MetricsListen_ParsedOrRefusedWithTheFlagName(string listen, string metricsListen, bool valid)
    {
        var errors = new List<string>();

        var settings = Load(errors, "--listen", listen, "--metrics-listen", metricsListen);

        if (valid)
        {
            Assert.Empty(errors);
            Assert.Equal(IPEndPoint.Parse(metricsListen), settings!.MetricsListen);
        }
        else
        {
            Assert.Null(settings);
            Assert.StartsWith("--metrics-listen", Assert.Single(errors), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Load_SeveralBadOptions_ReportsEveryProblemAtOnce()
    {
        var errors = new List<string>();

        var settings = Load(errors,
            "--listen", "nowhere",
            "--data", " ",
            "--intercept", "bad host!",
            "--allow-port", "0",
            "--upstream-ca", Path.Combine(Path.GetTempPath(), "mitmcache-missing-" + Guid.NewGuid().ToString("N") + ".pem"),
            "--connect-to", "registry.test",
            "--upstream-proxy", "socks5://proxy:1080",
            "--allow-client", "everyone",
            "--proxy-auth", "user-without-password",
            "--log-format", "xml",
            "--log-level", "loud",
            "--max-cache-size", "1KiB",
            "--manifest-policy", "sometimes",
            "--manifest-ttl", "soon",
            "--upstream-timeout", "0s",
            "--registry-credential", "ghcr.io");

        Assert.Null(settings);
        string[] flags =
        [
            "--listen", "--data", "--intercept", "--allow-port", "--upstream-ca", "--connect-to", "--upstream-proxy",
            "--allow-client", "--proxy-auth", "--log-format", "--log-level", "--max-cache-size", "--manifest-policy",
            "--manifest-ttl", "--upstream-timeout", "--registry-credential",
        ];
        Assert.Equal(flags.Length, errors.Count);
        foreach (var flag in flags)
        {
            Assert.Single(errors, e => e.StartsWith(flag + " ", StringComparison.Ordinal) || e.StartsWith(flag + ":", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Load_EarlierErrorsInList_ReturnsSettingsWhenOptionsAreValid()
    {
        // The caller collects file and environment problems in the same list; only new ones fail validation.
        var errors = new List<string> { "config file 'x.json': unknown option 'foo'" };

        var settings = Load(errors);

        Assert.NotNull(settings);
        Assert.Single(errors);
    }

    [Theory]
    [InlineData("0.0.0.0:3128")]
    [InlineData(":3128")]
    [InlineData("[::]:3128")]
    [InlineData("192.168.1.10:3128")]
    public void Load_NonLoopbackListenWithoutAccessControl_Refused(string listen)
    {
        var errors = new List<string>();

        var settings = Load(errors, "--listen", listen);

        Assert.Null(settings);
        var error = Assert.Single(errors);
        Assert.Contains("open proxy", error, StringComparison.Ordinal);
        Assert.Contains("--allow-client", error, StringComparison.Ordinal);
        Assert.Contains("--proxy-auth", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_NonLoopbackListenWithAllowClient_Accepted()
    {
        var errors = new List<string>();

        var settings = Load(errors, "--listen", "0.0.0.0:3128", "--allow-client", "10.0.0.0/8");

        Assert.Empty(errors);
        Assert.Equal(IPNetwork.Parse("10.0.0.0/8"), Assert.Single(settings!.AllowedClients));
    }

    [Fact]
    public void Load_NonLoopbackListenWithProxyAuth_Accepted()
    {
        var errors = new List<string>();

        var settings = Load(errors, "--listen", ":3128", "--proxy-auth", "user:secret");

        Assert.Empty(errors);
        Assert.Equal("user:secret", settings!.ProxyAuth);
    }

    [Theory]
    [InlineData("127.0.0.1:3128")]
    [InlineData("127.0.0.2:3128")]
    [InlineData("[::1]:3128")]
    public void Load_LoopbackListen_NeedsNoAccessControl(string listen)
    {
        var errors = new List<string>();

        Assert.NotNull(Load(errors, "--listen", listen));
        Assert.Empty(errors);
    }

    [Fact]
    public void Load_InterceptPatterns_NormalizedAndAddedToDefaultsOnce()
    {
        var errors = new List<string>();

        var settings = Load(errors, "--intercept", " Registry.Test", "--intercept", "*.Example.com", "--intercept", "GHCR.io", "--intercept", "registry.test");

        Assert.Empty(errors);
        Assert.Equal([.. ProxySettings.DefaultIntercept, "registry.test", "*.example.com"], settings!.Intercept);
    }

    [Fact]
    public void Load_NoDefaultIntercept_KeepsOnlyGivenPatterns()
    {
        var errors = new List<string>();

        var settings = Load(errors, "--no-default-intercept", "--intercept", "registry.test");

        Assert.Equal(["registry.test"], settings!.Intercept);
    }

    [Fact]
    public void Load_AllowPort_AddedTo443()
    {
        var errors = new List<string>();

        var settings = Load(errors, "--allow-port", "5000", "--allow-port", "8443", "--allow-port", "443");

        Assert.Equal([443, 5000, 8443], settings!.AllowedPorts.Order());
    }

    [Theory]
    [InlineData("0")]
    [InlineData("65536")]
    [InlineData("-1")]
    [InlineData("http")]
    public void Load_BadAllowPort_Reported(string port)
    {
        var errors = new List<string>();

        Assert.Null(Load(errors, "--allow-port", port));
        Assert.StartsWith("--allow-port", Assert.Single(errors), StringComparison.Ordinal);
    }

    [Fact]
    public void Load_AllowClientSingleAddresses_BecomeHostNetworks()
    {
        var errors = new List<string>();

        var settings = Load(errors, "--allow-client", "10.1.2.3", "--allow-client", "fd00::1", "--allow-client", "fd00::/8");

        Assert.Empty(errors);
        Assert.Equal([IPNetwork.Parse("10.1.2.3/32"), IPNetwork.Parse("fd00::1/128"), IPNetwork.Parse("fd00::/8")], settings!.AllowedClients);
    }

    [Fact]
    public void Load_AllowUpstreamNetwork_ParsedAndNoneByDefault()
    {
        var errors = new List<string>();

        var settings = Load(errors, "--allow-upstream-network", "10.20.0.0/16", "--allow-upstream-network", "fd00::5");
        var defaults = Load(errors);

        Assert.Empty(errors);
        Assert.Equal([IPNetwork.Parse("10.20.0.0/16"), IPNetwork.Parse("fd00::5/128")], settings!.AllowedUpstreamNetworks);
        Assert.Empty(defaults!.AllowedUpstreamNetworks);
    }

    [Fact]
    public void Load_BadAllowUpstreamNetwork_NamedInTheError()
    {
        var errors = new List<string>();

        Assert.Null(Load(errors, "--allow-upstream-network", "10.0.0.0/33"));
        Assert.StartsWith("--allow-upstream-network '10.0.0.0/33'", Assert.Single(errors), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("user:")]
    [InlineData(":secret")]
    [InlineData("user")]
    public void Load_BadProxyAuth_ReportedWithoutTheValue(string auth)
    {
        var errors = new List<string>();

        Assert.Null(Load(errors, "--proxy-auth", auth));
        var error = Assert.Single(errors);
        Assert.Equal("--proxy-auth: expected USER:PASSWORD (value not shown)", error);
    }

    [Fact]
    public void Load_RegistryCredentials_KeyedByLowerCaseHost()
    {
        var errors = new List<string>();

        var settings = Load(errors, "--registry-credential", "GHCR.io=user:tok:en", "--registry-credential", "registry.test:5000=a:b");

        Assert.Empty(errors);
        Assert.Equal("user:tok:en", settings!.RegistryCredentials["ghcr.io"]);
        Assert.Equal("a:b", settings.RegistryCredentials["registry.test:5000"]);
    }

    [Theory]
    [InlineData("ghcr.io")]
    [InlineData("ghcr.io=user")]
    [InlineData("ghcr.io=:secret")]
    [InlineData("=user:secret")]
    public void Load_BadRegistryCredential_ReportedWithoutTheSecret(string credential)
    {
        var errors = new List<string>();

        Assert.Null(Load(errors, "--registry-credential", credential));
        var error = Assert.Single(errors);
        Assert.DoesNotContain("secret", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://proxy.internal:3128", true)]
    [InlineData("http://proxy.internal:3128/", true)]
    [InlineData("https://proxy.internal:3128", false)]
    [InlineData("http://proxy.internal:3128/path", false)]
    [InlineData("proxy.internal:3128", false)]
    public void Load_UpstreamProxy_OnlyPlainHttpRoot(string proxy, bool valid)
    {
        var errors = new List<string>();

        var settings = Load(errors, "--upstream-proxy", proxy);

        Assert.Equal(valid, settings is not null);
        Assert.Equal(valid, errors.Count == 0);
    }

    [Fact]
    public void Load_ExistingUpstreamCa_FullPathKept()
    {
        using var directory = new TempDirectory();
        var file = directory.Combine("ca.pem");
        using (var authority = MitmCache.Certificates.CertificateAuthority.Create([], TimeProvider.System))
        {
            File.WriteAllText(file, authority.ExportPem());
        }

        var errors = new List<string>();

        var settings = Load(errors, "--upstream-ca", file);

        Assert.Equal(file, settings!.UpstreamCaFile);
    }

    [Fact]
    public void Load_UpstreamCaThatIsADirectoryOrHoldsNoCertificate_ReportedWithTheReason()
    {
        using var directory = new TempDirectory();
        var key = directory.Combine("key.pem");
        File.WriteAllText(key, "-----BEGIN PRIVATE KEY-----\nMAo=\n-----END PRIVATE KEY-----\n");
        var errors = new List<string>();

        Assert.Null(Load(errors, "--upstream-ca", directory.Path));
        Assert.Null(Load(errors, "--upstream-ca", key));
        Assert.Null(Load(errors, "--upstream-ca", directory.Combine("missing.pem")));

        Assert.Equal(3, errors.Count);
        Assert.Contains("is a directory", errors[0], StringComparison.Ordinal);
        Assert.Contains("no certificate", errors[1], StringComparison.Ordinal);
        Assert.Contains("not found", errors[2], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ttl", ManifestPolicy.Ttl)]
    [InlineData("OFFLINE", ManifestPolicy.Offline)]
    [InlineData("upstream-first", ManifestPolicy.UpstreamFirst)]
    public void Load_ManifestPolicy_ParsedCaseInsensitively(string text, ManifestPolicy expected)
    {
        var errors = new List<string>();

        Assert.Equal(expected, Load(errors, "--manifest-policy", text)!.ManifestPolicy);
    }

    [Fact]
    public void Load_JsonLogsAndLevel_Parsed()
    {
        var errors = new List<string>();

        var settings = Load(errors, "--log-format", "JSON", "--log-level", "debug");

        Assert.True(settings!.JsonLogs);
        Assert.Equal(LogEventLevel.Debug, settings.LogLevel);
    }

    [Theory]
    [InlineData("42")]
    [InlineData("-1")]
    public void Load_UndefinedNumericLogLevel_Reported(string level)
    {
        var errors = new List<string>();

        Assert.Null(Load(errors, "--log-level", level));
        Assert.StartsWith("--log-level", Assert.Single(errors), StringComparison.Ordinal);
    }

    [Fact]
    public void Load_MaxCacheSizeOfOneMiB_AcceptedAsMinimum()
    {
        var errors = new List<string>();

        Assert.Equal(1L << 20, Load(errors, "--max-cache-size", "1MiB")!.MaxCacheBytes);
        Assert.Null(Load(errors, "--max-cache-size", "1048575"));
    }

    [Fact]
    public void Load_ConnectionLimitsAndTimeouts_DocumentedDefaults()
    {
        var errors = new List<string>();

        var settings = Load(errors)!;

        Assert.Equal(TimeSpan.FromSeconds(10), settings.HeaderTimeout);
        Assert.Equal(TimeSpan.FromMinutes(10), settings.TunnelIdleTimeout);
        Assert.Equal(10_000, settings.MaxConnections);
        Assert.Equal(1_000, settings.MaxConnectionsPerClient);
        Assert.Equal(TimeSpan.FromSeconds(25), settings.ShutdownTimeout);
    }

    [Theory]
    [InlineData("0", 0)] // cut requests in flight at once
    [InlineData("90s", 90)]
    public void Load_ShutdownTimeout_Parsed(string text, int seconds)
    {
        var errors = new List<string>();

        var settings = Load(errors, "--shutdown-timeout", text)!;

        Assert.Empty(errors);
        Assert.Equal(TimeSpan.FromSeconds(seconds), settings.ShutdownTimeout);
    }

    [Theory]
    [InlineData("soon")]
    [InlineData("-5s")]
    [InlineData("")]
    public void Load_BadShutdownTimeout_ReportedWithFlag(string text)
    {
        var errors = new List<string>();

        Assert.Null(Load(errors, "--shutdown-timeout", text));
        Assert.StartsWith("--shutdown-timeout", Assert.Single(errors), StringComparison.Ordinal);
    }

    [Fact]
    public void Load_ConnectionLimitsAndTimeouts_Parsed()
    {
        var errors = new List<string>();

        var settings = Load(errors, "--header-timeout", "1500ms", "--tunnel-idle-timeout", "2h", "--max-connections", "500", "--max-connections-per-client", "1")!;

        Assert.Empty(errors);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), settings.HeaderTimeout);
        Assert.Equal(TimeSpan.FromHours(2), settings.TunnelIdleTimeout);
        Assert.Equal(500, settings.MaxConnections);
        Assert.Equal(1, settings.MaxConnectionsPerClient);
    }

    [Theory]
    [InlineData("0s", "10m", "10", "1", "--header-timeout")]
    [InlineData("soon", "10m", "10", "1", "--header-timeout")]
    [InlineData("10s", "0", "10", "1", "--tunnel-idle-timeout")]
    [InlineData("10s", "never", "10", "1", "--tunnel-idle-timeout")]
    [InlineData("10s", "10m", "0", "1", "--max-connections ")]
    [InlineData("10s", "10m", "-5", "1", "--max-connections ")]
    [InlineData("10s", "10m", "lots", "1", "--max-connections ")]
    [InlineData("10s", "10m", "99999999999", "1", "--max-connections ")]
    [InlineData("10s", "10m", "10", "0", "--max-connections-per-client")]
    [InlineData("10s", "10m", "10", "1.5", "--max-connections-per-client")]
    public void Load_BadConnectionLimitOrTimeout_ReportedWithFlag(string header, string idle, string max, string perClient, string flag)
    {
        var errors = new List<string>();

        Assert.Null(Load(errors, "--header-timeout", header, "--tunnel-idle-timeout", idle, "--max-connections", max, "--max-connections-per-client", perClient));
        Assert.StartsWith(flag, Assert.Single(errors), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("registry.test:443:127.0.0.1:5000", "registry.test", 443, "127.0.0.1", 5000)]
    [InlineData("Registry.Test:443:[::1]:5000", "registry.test", 443, "::1", 5000)]
    [InlineData("registry.test:443:[fd00::10]:8443", "registry.test", 443, "fd00::10", 8443)]
    [InlineData("registry.test:443:backend.internal:443", "registry.test", 443, "backend.internal", 443)]
    [InlineData("::127.0.0.1:5000", "", null, "127.0.0.1", 5000)] // empty HOST and PORT match anything
    [InlineData("registry.test::127.0.0.1:5000", "registry.test", null, "127.0.0.1", 5000)]
    [InlineData(":443:[::1]:5000", "", 443, "::1", 5000)]
    public void TryParseConnectTo_Valid_ReturnsRule(string text, string host, int? port, string address, int targetPort)
    {
        Assert.True(ConnectToRule.TryParse(text, out var rule));
        Assert.Equal(new ConnectToRule(host, port, address, targetPort), rule);
    }

    [Theory]
    [InlineData("")]
    [InlineData("registry.test")]
    [InlineData("registry.test:443")]
    [InlineData("registry.test:443:127.0.0.1")]
    [InlineData("registry.test:443::5000")] // no address
    [InlineData("registry.test:443:[]:5000")]
    [InlineData("registry.test:https:127.0.0.1:5000")]
    [InlineData("registry.test:0:127.0.0.1:5000")]
    [InlineData("registry.test:443:127.0.0.1:0")]
    [InlineData("registry.test:443:127.0.0.1:65536")]
    [InlineData("registry.test:443:127.0.0.1:")]
    [InlineData("registry.test:443:[::1]")]
    public void TryParseConnectTo_Invalid_ReturnsFalse(string text)
    {
        Assert.False(ConnectToRule.TryParse(text, out _));
    }

    [Theory]
    [InlineData("", null, "any.host", 1, true)]
    [InlineData("registry.test", null, "REGISTRY.test", 8443, true)]
    [InlineData("registry.test", 443, "registry.test", 443, true)]
    [InlineData("registry.test", 443, "registry.test", 5000, false)]
    [InlineData("registry.test", null, "other.test", 443, false)]
    [InlineData("", 443, "any.host", 443, true)]
    public void ConnectToRuleMatches_HostAndPort_ReturnsExpected(string ruleHost, int? rulePort, string host, int port, bool expected)
    {
        var rule = new ConnectToRule(ruleHost, rulePort, "127.0.0.1", 5000);

        Assert.Equal(expected, rule.Matches(host, port));
    }
}
