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

    private static Dictionary<OptionDefinition, GivenValue> Flags(List<string> errors, params string[] args) =>
        OptionLayers.ReadFlags(args, ProxyOptions.All, errors);

    private static ProxySettings? Load(List<string> errors, IDictionary environment, params string[] flags) =>
        SettingsLoader.Load(flags, environment, errors);

    [Theory]
    [InlineData("listen", "MITMCACHE_LISTEN", "listen")]
    [InlineData("max-cache-size", "MITMCACHE_MAX_CACHE_SIZE", "maxCacheSize")]
    [InlineData("no-default-intercept", "MITMCACHE_NO_DEFAULT_INTERCEPT", "noDefaultIntercept")]
    [InlineData("max-connections-per-client", "MITMCACHE_MAX_CONNECTIONS_PER_CLIENT", "maxConnectionsPerClient")]
    public void Names_FromTheOneName_FlagEnvironmentAndFileKey(string name, string variable, string key)
    {
        var option = Assert.Single(ProxyOptions.All, o => o.Name == name);

        Assert.Equal("--" + name, option.Flag);
        Assert.Equal(variable, option.EnvironmentVariable);
        Assert.Equal(key, option.FileKey);
    }

    [Fact]
    public void ReadFlags_ValueFormsSwitchesAndLists_Read()
    {
        var errors = new List<string>();

        var given = Flags(errors, "--listen", "127.0.0.1:4000", "--max-cache-size=5GiB", "--no-default-intercept",
            "--intercept", "a.test,b.test", "--intercept=c.test");

        Assert.Empty(errors);
        Assert.Equal(["127.0.0.1:4000"], given[ProxyOptions.Listen].Values);
        Assert.Equal(["5GiB"], given[ProxyOptions.MaxCacheSize].Values);
        Assert.Equal(["true"], given[ProxyOptions.NoDefaultIntercept].Values);
        Assert.Equal(["a.test", "b.test", "c.test"], given[ProxyOptions.Intercept].Values);
        Assert.Equal("--intercept", given[ProxyOptions.Intercept].Source);
    }

    [Theory]
    [InlineData("--listen", "127.0.0.1:1", "--listen", "127.0.0.1:2")]
    [InlineData("--listen", "127.0.0.1:1", "--listen=127.0.0.1:1")]
    [InlineData("--no-default-intercept", "--no-default-intercept")]
    [InlineData("--upstream-timeout", "1s", "--upstream-timeout", "2s")]
    public void ReadFlags_SingleValuedOptionTwice_ErrorNamingIt(params string[] args)
    {
        var errors = new List<string>();

        var given = Flags(errors, args);

        Assert.Contains($"{args[0].Split('=')[0]} is given 2 times", Assert.Single(errors), StringComparison.Ordinal);
        Assert.Empty(given);
    }

    [Fact]
    public void ReadFlags_SecretTwice_ErrorWithoutTheValues()
    {
        var errors = new List<string>();

        Flags(errors, "--proxy-auth", "u:first-secret", "--proxy-auth", "u:second-secret");

        Assert.DoesNotContain("secret", Assert.Single(errors), StringComparison.Ordinal);
    }

    [Fact]
    public void ReadFlags_UnknownOptionStrayWordAndMissingValue_EachReported()
    {
        var errors = new List<string>();

        Flags(errors, "--lisen", "x", "--max-cache-size");

        Assert.Equal(3, errors.Count);
        Assert.Equal("unknown option '--lisen'; did you mean --listen?", errors[0]);
        Assert.StartsWith("unexpected argument 'x'", errors[1], StringComparison.Ordinal);
        Assert.StartsWith("--max-cache-size: a value is required", errors[2], StringComparison.Ordinal);
    }

    [Fact]
    public void ReadFile_KnownKeysInCamelKebabAndOtherCase_Read()
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
              "allowClient": "10.0.0.0/8,192.168.0.0/16",
            }
            """);
        var errors = new List<string>();

        var given = OptionLayers.ReadFile(path, ProxyOptions.All, errors);

        Assert.Empty(errors);
        Assert.Equal(["127.0.0.1:4000"], given[ProxyOptions.Listen].Values);
        Assert.Equal(["5GiB"], given[ProxyOptions.MaxCacheSize].Values);
        Assert.Equal(["registry.test", "*.example.com"], given[ProxyOptions.Intercept].Values);
        Assert.Equal(["5000", "8443"], given[ProxyOptions.AllowPort].Values);
        Assert.Equal(["true"], given[ProxyOptions.NoDefaultIntercept].Values);
        Assert.Equal(["30"], given[ProxyOptions.ManifestTtl].Values);
        Assert.Equal(["10.0.0.0/8", "192.168.0.0/16"], given[ProxyOptions.AllowClient].Values);
        Assert.False(given.ContainsKey(ProxyOptions.ProxyAuth)); // null: not given
        Assert.Equal($"config file '{path}'", given[ProxyOptions.Listen].Source);
    }

    [Fact]
    public void ReadFile_UnknownKeysRepeatedOptionsAndConfigItself_EachReportedAndTheRestRead()
    {
        var path = WriteConfig("""{ "listen": "127.0.0.1:4000", "lisen": "typo", "cacheSize": "1G", "maxCacheSize": "1G", "max-cache-size": "2G", "config": "other.json" }""");
        var errors = new List<string>();

        var given = OptionLayers.ReadFile(path, ProxyOptions.All, errors);

        Assert.Equal(4, errors.Count);
        Assert.Contains(errors, e => e.Contains("unknown option 'lisen'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("unknown option 'cacheSize'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("option 'max-cache-size' is given more than once", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("unknown option 'config'", StringComparison.Ordinal));
        Assert.Equal(["127.0.0.1:4000"], given[ProxyOptions.Listen].Values);
        Assert.False(given.ContainsKey(ProxyOptions.MaxCacheSize));
    }

    [Theory]
    [InlineData("""{ "intercept": {"a": 1} }""", "intercept")]
    [InlineData("""{ "listen": ["127.0.0.1:1", "127.0.0.1:2"] }""", "listen")]
    [InlineData("""{ "listen": { "port": 3128 } }""", "listen")]
    [InlineData("""{ "allowPort": [[5000]] }""", "allowPort")]
    public void ReadFile_WrongValueShape_ReportedWithOptionName(string json, string option)
    {
        var errors = new List<string>();

        OptionLayers.ReadFile(WriteConfig(json), ProxyOptions.All, errors);

        Assert.Contains($"option '{option}'", Assert.Single(errors), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("[1, 2]", "must be a JSON object")]
    [InlineData("\"listen\"", "must be a JSON object")]
    [InlineData("{ \"listen\": ", "config file")]
    public void ReadFile_NotAnObjectOrInvalid_ReportedNotThrown(string json, string expected)
    {
        var errors = new List<string>();

        OptionLayers.ReadFile(WriteConfig(json), ProxyOptions.All, errors);

        Assert.Contains(expected, Assert.Single(errors), StringComparison.Ordinal);
    }

    [Fact]
    public void ReadFile_MissingFile_ReportedNotThrown()
    {
        var path = _directory.Combine("missing.json");
        var errors = new List<string>();

        OptionLayers.ReadFile(path, ProxyOptions.All, errors);

        Assert.Contains(path, Assert.Single(errors), StringComparison.Ordinal);
    }

    [Fact]
    public void ReadEnvironment_PrefixedVariables_ReadAndListsSplit()
    {
        var environment = new Hashtable
        {
            ["MITMCACHE_LISTEN"] = "[::1]:4000",
            ["MITMCACHE_ALLOW_PORT"] = "5000, 8443 9443",
            ["MITMCACHE_INTERCEPT"] = "registry.test,\n*.example.com,",
            ["LISTEN"] = "ignored:1",
            ["mitmcache_data"] = "ignored-because-case-differs",
        };
        var errors = new List<string>();

        var given = OptionLayers.ReadEnvironment(environment, ProxyOptions.All, errors);

        Assert.Empty(errors);
        Assert.Equal(["[::1]:4000"], given[ProxyOptions.Listen].Values);
        Assert.Equal(["5000", "8443", "9443"], given[ProxyOptions.AllowPort].Values);
        Assert.Equal(["registry.test", "*.example.com"], given[ProxyOptions.Intercept].Values);
        Assert.Equal("MITMCACHE_LISTEN", given[ProxyOptions.Listen].Source);
        Assert.Equal(3, given.Count);
    }

    [Theory]
    [InlineData("true", true)]
    [InlineData("False", false)]
    [InlineData("1", true)]
    [InlineData("0", false)]
    [InlineData("on", true)]
    [InlineData("off", false)]
    [InlineData("no", false)]
    [InlineData("yes", true)]
    public void Environment_BooleanSpellings_Parsed(string raw, bool expected)
    {
        var errors = new List<string>();

        var settings = Load(errors, new Hashtable { ["MITMCACHE_NO_DEFAULT_INTERCEPT"] = raw });

        Assert.Empty(errors);
        Assert.Equal(expected, settings!.Intercept.Count == 0);
    }

    [Fact]
    public void Environment_BadValue_ReportedWithOptionAndVariable()
    {
        var errors = new List<string>();

        Assert.Null(Load(errors, new Hashtable { ["MITMCACHE_NO_DEFAULT_INTERCEPT"] = "maybe", ["MITMCACHE_PROXY_AUTH"] = "secret-without-user" }));

        Assert.Equal(2, errors.Count);
        Assert.Equal("--no-default-intercept 'maybe' (from MITMCACHE_NO_DEFAULT_INTERCEPT): expected true or false", errors[0]);
        Assert.Equal("--proxy-auth (from MITMCACHE_PROXY_AUTH): expected USER:PASSWORD (value not shown)", errors[1]);
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
              "manifestPolicy": "ttl",
              "allowPort": [5000]
            }
            """);
        var environment = new Hashtable
        {
            ["MITMCACHE_CONFIG"] = path,
            ["MITMCACHE_LISTEN"] = "127.0.0.1:1002",
            ["MITMCACHE_INTERCEPT"] = "env.test",
            ["MITMCACHE_MANIFEST_POLICY"] = "offline",
            ["MITMCACHE_ALLOW_PORT"] = "",
        };
        var errors = new List<string>();

        var settings = Load(errors, environment, "--listen", "127.0.0.1:1003");

        Assert.Empty(errors);
        Assert.NotNull(settings);
        Assert.Equal(1003, settings.Listen.Port); // flags > env > file
        Assert.Contains("env.test", settings.Intercept); // env > file, the list as a whole
        Assert.DoesNotContain("file.test", settings.Intercept);
        Assert.Equal(ManifestPolicy.Offline, settings.ManifestPolicy); // env > file
        Assert.Equal(2L << 30, settings.MaxCacheBytes); // file > default
        Assert.Equal(Path.GetFullPath("from-file"), settings.DataDirectory);
        Assert.Equal([443], settings.AllowedPorts); // an empty list in the environment clears the file's
    }

    [Fact]
    public void Layers_ConfigFlagWinsOverConfigVariable_AndEachSourceNamesOptionsOnce()
    {
        var flagFile = WriteConfig("""{ "maxCacheSize": "3GiB" }""");
        var envFile = WriteConfig("""{ "maxCacheSize": "4GiB" }""");
        var errors = new List<string>();

        var settings = Load(errors, new Hashtable { ["MITMCACHE_CONFIG"] = envFile, ["MITMCACHE_MAX_CONNECTIONS"] = "5" },
            "--config", flagFile, "--max-connections", "6");

        Assert.Empty(errors);
        Assert.Equal(3L << 30, settings!.MaxCacheBytes);
        Assert.Equal(6, settings.MaxConnections); // a flag over the environment is precedence, not a repeat
    }

    [Fact]
    public void UpstreamProxy_FlagRepeated_EveryParentInOrder()
    {
        var errors = new List<string>();

        var settings = Load(errors, new Hashtable(), "--upstream-proxy", "http://p1:3128", "--upstream-proxy", "http://p2:3128,http://p3:3128");

        Assert.Empty(errors);
        Assert.Equal(["p1:3128", "p2:3128", "p3:3128"], settings!.UpstreamProxies.Select(p => p.Authority));
    }

    [Fact]
    public void UpstreamProxy_EnvironmentCommaList_EveryParent()
    {
        var errors = new List<string>();

        var settings = Load(errors, new Hashtable { ["MITMCACHE_UPSTREAM_PROXY"] = "http://p1:3128,http://p2:3128,http://p3:3128" });

        Assert.Empty(errors);
        Assert.Equal(3, settings!.UpstreamProxies.Count);
    }

    [Fact]
    public void UpstreamProxy_ConfigFileArray_EveryParent()
    {
        var errors = new List<string>();
        var path = WriteConfig("""{ "upstreamProxy": ["http://p1:3128", "http://p2:3128"], "noDirectFallback": true }""");

        var settings = Load(errors, new Hashtable(), "--config", path);

        Assert.Empty(errors);
        Assert.Equal(["p1:3128", "p2:3128"], settings!.UpstreamProxies.Select(p => p.Authority));
        Assert.False(settings.DirectFallback);
    }

    [Theory]
    [InlineData("--upstream-proxy", "http://p1:3128", "--upstream-proxy", "http://P1:3128")]
    [InlineData("--no-direct-fallback")]
    [InlineData("--upstream-proxy", "http://user:pw@p1:3128")]
    [InlineData("--instance-name", "a b")]
    [InlineData("--instance-name", "a,b")]
    public void Tier_BadCombination_Refused(params string[] flags)
    {
        var errors = new List<string>();

        Assert.Null(Load(errors, new Hashtable(), flags));

        Assert.Single(errors);
    }

    [Fact]
    public void InstanceName_Default_DiffersPerSettings()
    {
        var errors = new List<string>();

        var one = Load(errors, new Hashtable())!;
        var two = Load(errors, new Hashtable())!;

        Assert.Empty(errors);
        Assert.NotEqual(one.InstanceName, two.InstanceName);
    }
}
