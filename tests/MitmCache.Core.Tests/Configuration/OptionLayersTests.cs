using System.Collections;
using MitmCache.Configuration;
using MitmCache.Core.Tests.Certificates;

namespace MitmCache.Core.Tests.Configuration;

public sealed class OptionLayersTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private string WriteConfig(string json)
    {
        var path = _directory.Combine($"config-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        return path;
    }

    [Theory]
    [InlineData("Listen", "MITMCACHE_LISTEN")]
    [InlineData("MaxCacheSize", "MITMCACHE_MAX_CACHE_SIZE")]
    [InlineData("NoDefaultIntercept", "MITMCACHE_NO_DEFAULT_INTERCEPT")]
    [InlineData("UpstreamCa", "MITMCACHE_UPSTREAM_CA")]
    [InlineData("AllowPort", "MITMCACHE_ALLOW_PORT")]
    public void EnvironmentName_PropertyName_ScreamingSnakeWithPrefix(string property, string expected)
    {
        Assert.Equal(expected, OptionLayers.EnvironmentName(property));
    }

    [Fact]
    public void ApplyFile_KnownKeysInCamelAndKebabCase_Applied()
    {
        var path = WriteConfig("""
            {
              // comments and trailing commas are allowed
              "listen": "127.0.0.1:4000",
              "max-cache-size": "5GiB",
              "Intercept": ["registry.test", "*.example.com"],
              "allowPort": [5000, "8443"],
              "noDefaultIntercept": true,
              "manifestTtl": 30,
              "proxyAuth": null,
            }
            """);
        var options = new ProxyOptions { ProxyAuth = "was:set" };
        var errors = new List<string>();

        OptionLayers.ApplyFile(options, path, errors);

        Assert.Empty(errors);
        Assert.Equal("127.0.0.1:4000", options.Listen);
        Assert.Equal("5GiB", options.MaxCacheSize);
        Assert.Equal(["registry.test", "*.example.com"], options.Intercept!);
        Assert.Equal(["5000", "8443"], options.AllowPort!);
        Assert.True(options.NoDefaultIntercept);
        Assert.Equal("30", options.ManifestTtl);
        Assert.Null(options.ProxyAuth);
        Assert.Equal("mitmcache-data", options.Data); // not named: default kept
    }

    [Fact]
    public void ApplyFile_UnknownKeys_EachReportedAndKnownKeysStillApplied()
    {
        var path = WriteConfig("""{ "listen": "127.0.0.1:4000", "lisen": "typo", "cacheSize": "1G" }""");
        var options = new ProxyOptions();
        var errors = new List<string>();

        OptionLayers.ApplyFile(options, path, errors);

        Assert.Equal(2, errors.Count);
        Assert.Contains(errors, e => e.Contains("unknown option 'lisen'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("unknown option 'cacheSize'", StringComparison.Ordinal));
        Assert.Equal("127.0.0.1:4000", options.Listen);
    }

    [Theory]
    [InlineData("""{ "intercept": 5 }""", "intercept")]
    [InlineData("""{ "noDefaultIntercept": "maybe" }""", "noDefaultIntercept")]
    [InlineData("""{ "listen": { "port": 3128 } }""", "listen")]
    public void ApplyFile_WrongValueType_ReportedWithOptionName(string json, string option)
    {
        var errors = new List<string>();

        OptionLayers.ApplyFile(new ProxyOptions(), WriteConfig(json), errors);

        Assert.Contains($"option '{option}'", Assert.Single(errors), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("[1, 2]")]
    [InlineData("\"listen\"")]
    public void ApplyFile_TopLevelNotObject_Reported(string json)
    {
        var errors = new List<string>();

        OptionLayers.ApplyFile(new ProxyOptions(), WriteConfig(json), errors);

        Assert.Contains("must be a JSON object", Assert.Single(errors), StringComparison.Ordinal);
    }

    [Fact]
    public void ApplyFile_InvalidJson_ReportedNotThrown()
    {
        var errors = new List<string>();

        OptionLayers.ApplyFile(new ProxyOptions(), WriteConfig("{ \"listen\": "), errors);

        Assert.Single(errors);
    }

    [Fact]
    public void ApplyFile_MissingFile_ReportedNotThrown()
    {
        var path = _directory.Combine("missing.json");
        var errors = new List<string>();

        OptionLayers.ApplyFile(new ProxyOptions(), path, errors);

        Assert.Contains(path, Assert.Single(errors), StringComparison.Ordinal);
    }

    [Fact]
    public void ApplyEnvironment_PrefixedVariables_AppliedAndListsSplit()
    {
        var environment = new Hashtable
        {
            ["MITMCACHE_LISTEN"] = "[::1]:4000",
            ["MITMCACHE_ALLOW_PORT"] = "5000, 8443 9443",
            ["MITMCACHE_INTERCEPT"] = "registry.test,\n*.example.com,",
            ["MITMCACHE_NO_DEFAULT_INTERCEPT"] = "yes",
            ["LISTEN"] = "ignored:1",
            ["mitmcache_data"] = "ignored-because-case-differs",
        };
        var options = new ProxyOptions();
        var errors = new List<string>();

        OptionLayers.ApplyEnvironment(options, environment, errors);

        Assert.Empty(errors);
        Assert.Equal("[::1]:4000", options.Listen);
        Assert.Equal(["5000", "8443", "9443"], options.AllowPort!);
        Assert.Equal(["registry.test", "*.example.com"], options.Intercept!);
        Assert.True(options.NoDefaultIntercept);
        Assert.Equal("mitmcache-data", options.Data);
    }

    [Fact]
    public void ApplyEnvironmentAndFile_ConnectionLimits_ReachTheirOptions()
    {
        var file = WriteConfig("""{"maxConnections": 20000, "max-connections-per-client": "50", "headerTimeout": "3s"}""");
        var options = new ProxyOptions();
        var errors = new List<string>();

        OptionLayers.ApplyFile(options, file, errors);
        OptionLayers.ApplyEnvironment(options, new Hashtable { ["MITMCACHE_TUNNEL_IDLE_TIMEOUT"] = "30m", ["MITMCACHE_MAX_CONNECTIONS_PER_CLIENT"] = "60" }, errors);

        Assert.Empty(errors);
        Assert.Equal("20000", options.MaxConnections);
        Assert.Equal("60", options.MaxConnectionsPerClient);
        Assert.Equal("3s", options.HeaderTimeout);
        Assert.Equal("30m", options.TunnelIdleTimeout);
    }

    [Theory]
    [InlineData("true", true)]
    [InlineData("False", false)]
    [InlineData("1", true)]
    [InlineData("0", false)]
    [InlineData("on", true)]
    [InlineData("off", false)]
    [InlineData("no", false)]
    public void ApplyEnvironment_BooleanSpellings_Parsed(string raw, bool expected)
    {
        var options = new ProxyOptions();
        var errors = new List<string>();

        OptionLayers.ApplyEnvironment(options, new Hashtable { ["MITMCACHE_NO_DEFAULT_INTERCEPT"] = raw }, errors);

        Assert.Empty(errors);
        Assert.Equal(expected, options.NoDefaultIntercept);
    }

    [Fact]
    public void ApplyEnvironment_BadBoolean_ReportedWithVariableName()
    {
        var options = new ProxyOptions();
        var errors = new List<string>();

        OptionLayers.ApplyEnvironment(options, new Hashtable { ["MITMCACHE_NO_DEFAULT_INTERCEPT"] = "maybe" }, errors);

        Assert.StartsWith("MITMCACHE_NO_DEFAULT_INTERCEPT", Assert.Single(errors), StringComparison.Ordinal);
        Assert.Null(options.NoDefaultIntercept);
    }

    [Fact]
    public void ApplyFlags_NullEmptyAndFalseValues_DoNotOverride()
    {
        var options = new ProxyOptions { Listen = "127.0.0.1:4000", Intercept = ["from.file"], NoDefaultIntercept = true };

        OptionLayers.ApplyFlags(options, new Flags());

        Assert.Equal("127.0.0.1:4000", options.Listen);
        Assert.Equal(["from.file"], options.Intercept);
        Assert.True(options.NoDefaultIntercept);
    }

    [Fact]
    public void ApplyFlags_GivenValues_Override()
    {
        var options = new ProxyOptions();

        OptionLayers.ApplyFlags(options, new Flags { Listen = "[::1]:5000", Intercept = ["registry.test"], NoDefaultIntercept = true, Verbose = true });

        Assert.Equal("[::1]:5000", options.Listen);
        Assert.Equal(["registry.test"], options.Intercept!);
        Assert.True(options.NoDefaultIntercept);
    }

    [Fact]
    public void Layers_FileThenEnvironmentThenFlags_LaterWinsOnlyWhereItSpeaks()
    {
        var path = WriteConfig("""
            {
              "listen": "127.0.0.1:1001",
              "data": "from-file",
              "maxCacheSize": "2GiB",
              "intercept": ["file.test"],
              "manifestPolicy": "ttl"
            }
            """);
        var environment = new Hashtable
        {
            ["MITMCACHE_LISTEN"] = "127.0.0.1:1002",
            ["MITMCACHE_INTERCEPT"] = "env.test",
            ["MITMCACHE_MANIFEST_POLICY"] = "offline",
        };
        var flags = new Flags { Listen = "127.0.0.1:1003", Intercept = [] };
        var options = new ProxyOptions();
        var errors = new List<string>();

        OptionLayers.ApplyFile(options, path, errors);
        OptionLayers.ApplyEnvironment(options, environment, errors);
        OptionLayers.ApplyFlags(options, flags);
        var settings = SettingsValidator.Validate(options, errors);

        Assert.Empty(errors);
        Assert.NotNull(settings);
        Assert.Equal(1003, settings.Listen.Port); // flags > env > file
        Assert.Contains("env.test", settings.Intercept); // env > file; empty flag list does not override
        Assert.DoesNotContain("file.test", settings.Intercept);
        Assert.Equal(ManifestPolicy.Offline, settings.ManifestPolicy); // env > file
        Assert.Equal(2L << 30, settings.MaxCacheBytes); // file > default
        Assert.Equal(Path.GetFullPath("from-file"), settings.DataDirectory);
    }

    /// <summary>Stands in for the CLI's parsed flags: only the property names have to match <see cref="ProxyOptions"/>.</summary>
    private sealed class Flags
    {
        public string? Listen { get; init; }

        public IEnumerable<string> Intercept { get; init; } = [];

        public bool NoDefaultIntercept { get; init; }

        public bool Verbose { get; init; } // no such option: ignored
    }
}
