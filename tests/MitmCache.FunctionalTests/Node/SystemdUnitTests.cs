using System.Runtime.Versioning;
using System.Text.RegularExpressions;
using MitmCache.Configuration;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Node;

/// <summary>systemd/mitmcache.service, the sockets and mitmcache.env.example: syntax, sandbox, readiness and restart policy.</summary>
[SupportedOSPlatform("linux")]
public sealed partial class SystemdUnitTests
{
    private static string UnitPath => RepositoryFiles.Combine("systemd", "mitmcache.service");

    private static string EnvExamplePath => RepositoryFiles.Combine("systemd", "mitmcache.env.example");

    /// <summary>
    /// systemd-analyze verify checks that ExecStart exists, so the units are verified as copies whose
    /// only change is ExecStart pointing at a stand-in executable. Verify exits 0 even when it
    /// ignores a bad line ("Failed to parse ..., ignoring"), so any output at all is a failure.
    /// </summary>
    [RequiresExecutableFact("/usr/bin/systemd-analyze", "systemd")]
    public async Task Verify_ServiceAndSocketUnits_NoFindings()
    {
        using var dir = TempDir.Create("mitmcache-unit");
        var binary = dir.Combine("mitmcache");
        await File.WriteAllTextAsync(binary, "#!/bin/sh\nexit 0\n");
        File.SetUnixFileMode(binary, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var original = await File.ReadAllTextAsync(UnitPath);
        var copy = original.Replace("ExecStart=/usr/bin/mitmcache run", $"ExecStart={binary} run", StringComparison.Ordinal);
        Assert.NotEqual(original, copy);
        var unit = dir.Combine("mitmcache.service");
        await File.WriteAllTextAsync(unit, copy);
        string[] sockets = ["mitmcache.socket", "mitmcache-metrics.socket"];
        foreach (var socket in sockets)
        {
            File.Copy(RepositoryFiles.Combine("systemd", socket), dir.Combine(socket));
        }

        var result = await ProcessRunner.RunAsync("/usr/bin/systemd-analyze", ["verify", "--man=no", unit, .. sockets.Select(s => dir.Combine(s))]);

        Assert.True(result.Succeeded && result.StdOut.Length == 0 && result.StdErr.Length == 0, result.ToString());
    }

    [RequiresExecutableFact("/usr/bin/systemd-analyze", "systemd")]
    public async Task Verify_BrokenCopy_IsReported()
    {
        // Guards the check above: a bad value must show up in the output that test requires to be empty.
        using var dir = TempDir.Create("mitmcache-unit");
        var unit = dir.Combine("mitmcache.service");
        var text = (await File.ReadAllTextAsync(UnitPath)).Replace("ExecStart=/usr/bin/mitmcache run", "ExecStart=/bin/true", StringComparison.Ordinal);
        await File.WriteAllTextAsync(unit, text.Replace("ProtectSystem=strict", "ProtectSystem=stricter", StringComparison.Ordinal));

        var result = await ProcessRunner.RunAsync("/usr/bin/systemd-analyze", ["verify", "--man=no", unit]);

        Assert.Contains("ignoring: stricter", result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unit_DeclaresSandboxAndRestartPolicy()
    {
        var settings = ServiceSettings(await File.ReadAllTextAsync(UnitPath));

        foreach (var (key, value) in new[]
        {
            ("Type", "notify"), ("ExecStart", "/usr/bin/mitmcache run"), ("DynamicUser", "yes"), ("WatchdogSec", "10s"),
            ("StateDirectory", "mitmcache"), ("Environment", "MITMCACHE_DATA=/var/lib/mitmcache"),
            ("EnvironmentFile", "-/etc/mitmcache/mitmcache.env"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
            ("NoNewPrivileges", "yes"), ("PrivateTmp", "yes"), ("PrivateDevices", "yes"), ("CapabilityBoundingSet", ""),
            ("AmbientCapabilities", ""), ("LimitNOFILE", "65536"), ("Restart", "always"), ("RestartSec", "250ms"), ("UMask", "0077"), ("TimeoutStopSec", "30"),
        })
        {
            Assert.Contains((key, value), settings);
        }

        var families = settings.Single(s => s.Key == "RestrictAddressFamilies").Value.Split(' ');
        Assert.Superset(new HashSet<string> { "AF_INET", "AF_INET6", "AF_UNIX" }, families.ToHashSet());
        Assert.DoesNotContain(settings, s => s.Key == "MemoryDenyWriteExecute"); // the .NET JIT needs W+X pages
    }

    [Fact]
    public async Task Socket_ListensOnLoopback3128_ServiceRequiresIt()
    {
        var socket = await File.ReadAllTextAsync(RepositoryFiles.Combine("systemd", "mitmcache.socket"));
        var unit = await File.ReadAllTextAsync(UnitPath);

        Assert.Contains("\nListenStream=127.0.0.1:3128\n", socket, StringComparison.Ordinal); // never an open proxy by default
        Assert.Contains("\nAccept=no\n", socket, StringComparison.Ordinal);
        Assert.Contains("\nRequires=mitmcache.socket\n", unit, StringComparison.Ordinal);
        Assert.DoesNotContain("ExecStartPost", unit, StringComparison.Ordinal); // readiness is sd_notify now
        // Drained within --shutdown-timeout (25 s by default), before systemd's TimeoutStopSec kills.
        Assert.True(ProxyOptions.ShutdownTimeout.Default < TimeSpan.FromSeconds(int.Parse(ServiceSettings(unit).Single(s => s.Key == "TimeoutStopSec").Value, System.Globalization.CultureInfo.InvariantCulture)));
    }

    [Fact]
    public async Task EnvExample_DocumentsCommonVariables_AllOfThemRealWithValidExamples()
    {
        var text = await File.ReadAllTextAsync(EnvExamplePath);
        var documented = VariableName().Matches(text).Select(m => m.Groups[1].Value).ToHashSet();
        var known = ProxyOptions.All.Select(o => o.EnvironmentVariable).ToHashSet();

        Assert.Superset(new HashSet<string>
        {
            "MITMCACHE_LISTEN", "MITMCACHE_ALLOW_CLIENT", "MITMCACHE_PROXY_AUTH", "MITMCACHE_MAX_CACHE_SIZE",
            "MITMCACHE_INTERCEPT", "MITMCACHE_ALLOW_PORT", "MITMCACHE_LOG_FORMAT",
        }, documented);
        Assert.Subset(known, documented);
        Assert.DoesNotMatch(ActiveSetting(), text); // every setting is an example until the operator uncomments it

        // Each example value, as an operator would uncomment it, passes the option's own validation
        // (files the examples name, such as an upstream CA, are left out: they exist on the operator's host).
        var examples = ExampleSetting().Matches(text).Select(m => (Name: m.Groups[1].Value, Value: m.Groups[2].Value))
            .Where(e => e.Name is not ("MITMCACHE_UPSTREAM_CA" or "MITMCACHE_CONFIG")).ToList();
        Assert.NotEmpty(examples);
        var environment = new System.Collections.Hashtable { ["MITMCACHE_DATA"] = Path.GetTempPath() };
        foreach (var (name, value) in examples)
        {
            environment[name] = value;
        }

        var errors = new List<string>();
        SettingsLoader.Load([], environment, errors);
        Assert.Empty(errors);
    }

    /// <summary>The [Service] key=value pairs, continuation lines joined.</summary>
    private static List<(string Key, string Value)> ServiceSettings(string unit) =>
        unit.Replace("\\\n", " ", StringComparison.Ordinal).Split('\n')
            .SkipWhile(line => line != "[Service]").Skip(1).TakeWhile(line => !line.StartsWith('['))
            .Where(line => line.Length > 0 && !line.StartsWith('#'))
            .Select(line => (line[..line.IndexOf('=', StringComparison.Ordinal)], line[(line.IndexOf('=', StringComparison.Ordinal) + 1)..]))
            .ToList();

    [GeneratedRegex(@"\b(MITMCACHE_[A-Z_]+)\b")]
    private static partial Regex VariableName();

    [GeneratedRegex(@"^#(MITMCACHE_[A-Z_]+)=(.*)$", RegexOptions.Multiline)]
    private static partial Regex ExampleSetting();

    [GeneratedRegex("^MITMCACHE_", RegexOptions.Multiline)]
    private static partial Regex ActiveSetting();
}
