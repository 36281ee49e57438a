using System.Net;
using MitmCache.Configuration;
using MitmCache.Core.Tests.Certificates;
using Serilog.Events;

namespace MitmCache.Core.Tests.Configuration;

public class SettingsValidatorTests
{
    [Fact]
    public void Validate_Defaults_ReturnsDocumentedSettings()
    {
        var errors = new List<string>();

        var settings = SettingsValidator.Validate(new ProxyOptions(), errors);

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
        Assert.Null(settings.UpstreamProxy);
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
    public void Validate_MetricsListen_ParsedOrRefusedWithTheFlagName(string listen, string metricsListen, bool valid)
    {
        var errors = new List<string>();

        var settings = SettingsValidator.Validate(new ProxyOptions { Listen = listen, MetricsListen = metricsListen }, errors);

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
    public void Validate_SeveralBadOptions_ReportsEveryProblemAtOnce()
    {
        var options = new ProxyOptions
        {
            Listen = "nowhere",
            Data = " ",
            Intercept = ["bad host!"],
            AllowPort = ["0"],
            UpstreamCa = Path.Combine(Path.GetTempPath(), "mitmcache-missing-" + Guid.NewGuid().ToString("N") + ".pem"),
            ConnectTo = ["registry.test"],
            UpstreamProxy = "socks5://proxy:1080",
            AllowClient = ["everyone"],
            ProxyAuth = "user-without-password",
            LogFormat = "xml",
            LogLevel = "loud",
            MaxCacheSize = "1KiB",
            ManifestPolicy = "sometimes",
            ManifestTtl = "soon",
            UpstreamTimeout = "0s",
            RegistryCredential = ["ghcr.io"],
        };
        var errors = new List<string>();

        var settings = SettingsValidator.Validate(options, errors);

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
    public void Validate_EarlierErrorsInList_ReturnsSettingsWhenOptionsAreValid()
    {
        // The caller collects file and environment problems in the same list; only new ones fail validation.
        var errors = new List<string> { "config file 'x.json': unknown option 'foo'" };

        var settings = SettingsValidator.Validate(new ProxyOptions(), errors);

        Assert.NotNull(settings);
        Assert.Single(errors);
    }

    [Theory]
    [InlineData("0.0.0.0:3128")]
    [InlineData(":3128")]
    [InlineData("[::]:3128")]
    [InlineData("192.168.1.10:3128")]
    public void Validate_NonLoopbackListenWithoutAccessControl_Refused(string listen)
    {
        var errors = new List<string>();

        var settings = SettingsValidator.Validate(new ProxyOptions { Listen = listen }, errors);

        Assert.Null(settings);
        var error = Assert.Single(errors);
        Assert.Contains("open proxy", error, StringComparison.Ordinal);
        Assert.Contains("--allow-client", error, StringComparison.Ordinal);
        Assert.Contains("--proxy-auth", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_NonLoopbackListenWithAllowClient_Accepted()
    {
        var errors = new List<string>();

        var settings = SettingsValidator.Validate(new ProxyOptions { Listen = "0.0.0.0:3128", AllowClient = ["10.0.0.0/8"] }, errors);

        Assert.Empty(errors);
        Assert.Equal(IPNetwork.Parse("10.0.0.0/8"), Assert.Single(settings!.AllowedClients));
    }

    [Fact]
    public void Validate_NonLoopbackListenWithProxyAuth_Accepted()
    {
        var errors = new List<string>();

        var settings = SettingsValidator.Validate(new ProxyOptions { Listen = ":3128", ProxyAuth = "user:secret" }, errors);

        Assert.Empty(errors);
        Assert.Equal("user:secret", settings!.ProxyAuth);
    }

    [Theory]
    [InlineData("127.0.0.1:3128")]
    [InlineData("127.0.0.2:3128")]
    [InlineData("[::1]:3128")]
    public void Validate_LoopbackListen_NeedsNoAccessControl(string listen)
    {
        var errors = new List<string>();

        Assert.NotNull(SettingsValidator.Validate(new ProxyOptions { Listen = listen }, errors));
        Assert.Empty(errors);
    }

    [Fact]
    public void Validate_InterceptPatterns_NormalizedAndAddedToDefaultsOnce()
    {
        var errors = new List<string>();

        var settings = SettingsValidator.Validate(new ProxyOptions { Intercept = [" Registry.Test ", "*.Example.com", "GHCR.io", "registry.test"] }, errors);

        Assert.Empty(errors);
        Assert.Equal([.. ProxySettings.DefaultIntercept, "registry.test", "*.example.com"], settings!.Intercept);
    }

    [Fact]
    public void Validate_NoDefaultIntercept_KeepsOnlyGivenPatterns()
    {
        var errors = new List<string>();

        var settings = SettingsValidator.Validate(new ProxyOptions { NoDefaultIntercept = true, Intercept = ["registry.test"] }, errors);

        Assert.Equal(["registry.test"], settings!.Intercept);
    }

    [Fact]
    public void Validate_AllowPort_AddedTo443()
    {
        var errors = new List<string>();

        var settings = SettingsValidator.Validate(new ProxyOptions { AllowPort = ["5000", "8443", "443"] }, errors);

        Assert.Equal([443, 5000, 8443], settings!.AllowedPorts.Order());
    }

    [Theory]
    [InlineData("0")]
    [InlineData("65536")]
    [InlineData("-1")]
    [InlineData("http")]
    [InlineData("")]
    public void Validate_BadAllowPort_Reported(string port)
    {
        var errors = new List<string>();

        Assert.Null(SettingsValidator.Validate(new ProxyOptions { AllowPort = [port] }, errors));
        Assert.StartsWith("--allow-port", Assert.Single(errors), StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_AllowClientSingleAddresses_BecomeHostNetworks()
    {
        var errors = new List<string>();

        var settings = SettingsValidator.Validate(new ProxyOptions { AllowClient = ["10.1.2.3", "fd00::1", "fd00::/8"] }, errors);

        Assert.Empty(errors);
        Assert.Equal([IPNetwork.Parse("10.1.2.3/32"), IPNetwork.Parse("fd00::1/128"), IPNetwork.Parse("fd00::/8")], settings!.AllowedClients);
    }

    [Fact]
    public void Validate_AllowUpstreamNetwork_ParsedAndNoneByDefault()
    {
        var errors = new List<string>();

        var settings = SettingsValidator.Validate(new ProxyOptions { AllowUpstreamNetwork = ["10.20.0.0/16", "fd00::5"] }, errors);
        var defaults = SettingsValidator.Validate(new ProxyOptions(), errors);

        Assert.Empty(errors);
        Assert.Equal([IPNetwork.Parse("10.20.0.0/16"), IPNetwork.Parse("fd00::5/128")], settings!.AllowedUpstreamNetworks);
        Assert.Empty(defaults!.AllowedUpstreamNetworks);
    }

    [Fact]
    public void Validate_BadAllowUpstreamNetwork_NamedInTheError()
    {
        var errors = new List<string>();

        Assert.Null(SettingsValidator.Validate(new ProxyOptions { AllowUpstreamNetwork = ["10.0.0.0/33"] }, errors));
        Assert.StartsWith("--allow-upstream-network '10.0.0.0/33'", Assert.Single(errors), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("user:")]
    [InlineData(":secret")]
    [InlineData("user")]
    public void Validate_BadProxyAuth_ReportedWithoutTheValue(string auth)
    {
        var errors = new List<string>();

        Assert.Null(SettingsValidator.Validate(new ProxyOptions { ProxyAuth = auth }, errors));
        var error = Assert.Single(errors);
        Assert.Equal("--proxy-auth: expected USER:PASSWORD", error);
    }

    [Fact]
    public void Validate_RegistryCredentials_KeyedByLowerCaseHost()
    {
        var errors = new List<string>();

        var settings = SettingsValidator.Validate(new ProxyOptions { RegistryCredential = ["GHCR.io=user:tok:en", "registry.test:5000=a:b"] }, errors);

        Assert.Empty(errors);
        Assert.Equal("user:tok:en", settings!.RegistryCredentials["ghcr.io"]);
        Assert.Equal("a:b", settings.RegistryCredentials["registry.test:5000"]);
    }

    [Theory]
    [InlineData("ghcr.io")]
    [InlineData("ghcr.io=user")]
    [InlineData("ghcr.io=:secret")]
    [InlineData("=user:secret")]
    public void Validate_BadRegistryCredential_ReportedWithoutTheSecret(string credential)
    {
        var errors = new List<string>();

        Assert.Null(SettingsValidator.Validate(new ProxyOptions { RegistryCredential = [credential] }, errors));
        var error = Assert.Single(errors);
        Assert.DoesNotContain("secret", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://proxy.internal:3128", true)]
    [InlineData("http://proxy.internal:3128/", true)]
    [InlineData("https://proxy.internal:3128", false)]
    [InlineData("http://proxy.internal:3128/path", false)]
    [InlineData("proxy.internal:3128", false)]
    public void Validate_UpstreamProxy_OnlyPlainHttpRoot(string proxy, bool valid)
    {
        var errors = new List<string>();

        var settings = SettingsValidator.Validate(new ProxyOptions { UpstreamProxy = proxy }, errors);

        Assert.Equal(valid, settings is not null);
        Assert.Equal(valid, errors.Count == 0);
    }

    [Fact]
    public void Validate_ExistingUpstreamCa_FullPathKept()
    {
        using var directory = new TempDirectory();
        var file = directory.Combine("ca.pem");
        File.WriteAllText(file, "not checked here");
        var errors = new List<string>();

        var settings = SettingsValidator.Validate(new ProxyOptions { UpstreamCa = file }, errors);

        Assert.Equal(file, settings!.UpstreamCaFile);
    }

    [Theory]
    [InlineData("ttl", ManifestPolicy.Ttl)]
    [InlineData("OFFLINE", ManifestPolicy.Offline)]
    [InlineData("upstream-first", ManifestPolicy.UpstreamFirst)]
    public void Validate_ManifestPolicy_ParsedCaseInsensitively(string text, ManifestPolicy expected)
    {
        var errors = new List<string>();

        Assert.Equal(expected, SettingsValidator.Validate(new ProxyOptions { ManifestPolicy = text }, errors)!.ManifestPolicy);
    }

    [Fact]
    public void Validate_JsonLogsAndLevel_Parsed()
    {
        var errors = new List<string>();

        var settings = SettingsValidator.Validate(new ProxyOptions { LogFormat = "JSON", LogLevel = "debug" }, errors);

        Assert.True(settings!.JsonLogs);
        Assert.Equal(LogEventLevel.Debug, settings.LogLevel);
    }

    [Theory]
    [InlineData("42")]
    [InlineData("-1")]
    public void Validate_UndefinedNumericLogLevel_Reported(string level)
    {
        var errors = new List<string>();

        Assert.Null(SettingsValidator.Validate(new ProxyOptions { LogLevel = level }, errors));
        Assert.StartsWith("--log-level", Assert.Single(errors), StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_MaxCacheSizeOfOneMiB_AcceptedAsMinimum()
    {
        var errors = new List<string>();

        Assert.Equal(1L << 20, SettingsValidator.Validate(new ProxyOptions { MaxCacheSize = "1MiB" }, errors)!.MaxCacheBytes);
        Assert.Null(SettingsValidator.Validate(new ProxyOptions { MaxCacheSize = "1048575" }, errors));
    }

    [Fact]
    public void Validate_ConnectionLimitsAndTimeouts_DocumentedDefaults()
    {
        var errors = new List<string>();

        var settings = SettingsValidator.Validate(new ProxyOptions(), errors)!;

        Assert.Equal(TimeSpan.FromSeconds(10), settings.HeaderTimeout);
        Assert.Equal(TimeSpan.FromMinutes(10), settings.TunnelIdleTimeout);
        Assert.Equal(10_000, settings.MaxConnections);
        Assert.Equal(1_000, settings.MaxConnectionsPerClient);
    }

    [Fact]
    public void Validate_ConnectionLimitsAndTimeouts_Parsed()
    {
        var options = new ProxyOptions { HeaderTimeout = "1500ms", TunnelIdleTimeout = "2h", MaxConnections = "500", MaxConnectionsPerClient = "1" };
        var errors = new List<string>();

        var settings = SettingsValidator.Validate(options, errors)!;

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
    public void Validate_BadConnectionLimitOrTimeout_ReportedWithFlag(string header, string idle, string max, string perClient, string flag)
    {
        var options = new ProxyOptions { HeaderTimeout = header, TunnelIdleTimeout = idle, MaxConnections = max, MaxConnectionsPerClient = perClient };
        var errors = new List<string>();

        Assert.Null(SettingsValidator.Validate(options, errors));
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
        Assert.True(SettingsValidator.TryParseConnectTo(text, out var rule));
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
        Assert.False(SettingsValidator.TryParseConnectTo(text, out _));
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
