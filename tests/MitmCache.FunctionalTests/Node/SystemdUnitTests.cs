using System.Runtime.Versioning;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;
using MitmCache.Configuration;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Node;

/// <summary>systemd/mitmcache.service and mitmcache.env.example: syntax, sandbox and the readiness wait.</summary>
[SupportedOSPlatform("linux")]
public sealed partial class SystemdUnitTests
{
    private static string UnitPath => RepositoryFiles.Combine("systemd", "mitmcache.service");

    private static string EnvExamplePath => RepositoryFiles.Combine("systemd", "mitmcache.env.example");

    /// <summary>
    /// systemd-analyze verify checks that ExecStart exists, so the unit is verified as a copy whose
    /// only change is ExecStart pointing at a stand-in executable. Verify exits 0 even when it
    /// ignores a bad line ("Failed to parse ..., ignoring"), so any output at all is a failure.
    /// </summary>
    [RequiresExecutableFact("/usr/bin/systemd-analyze", "systemd")]
    public async Task Verify_ServiceUnit_NoFindings()
    {
        using var dir = TempDir.Create("mitmcache-unit");
        var binary = dir.Combine("mitmcache");
        await File.WriteAllTextAsync(binary, "#!/bin/sh\nexit 0\n");
        File.SetUnixFileMode(binary, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var original = await File.ReadAllTextAsync(UnitPath);
        var copy = original.Replace("ExecStart=/usr/local/bin/mitmcache run", $"ExecStart={binary} run", StringComparison.Ordinal);
        Assert.NotEqual(original, copy);
        var unit = dir.Combine("mitmcache.service");
        await File.WriteAllTextAsync(unit, copy);

        var result = await ProcessRunner.RunAsync("/usr/bin/systemd-analyze", ["verify", "--man=no", unit]);

        Assert.True(result.Succeeded && result.StdOut.Length == 0 && result.StdErr.Length == 0, result.ToString());
    }

    [RequiresExecutableFact("/usr/bin/systemd-analyze", "systemd")]
    public async Task Verify_BrokenCopy_IsReported()
    {
        // Guards the check above: a bad value must show up in the output that test requires to be empty.
        using var dir = TempDir.Create("mitmcache-unit");
        var unit = dir.Combine("mitmcache.service");
        var text = (await File.ReadAllTextAsync(UnitPath)).Replace("ExecStart=/usr/local/bin/mitmcache run", "ExecStart=/bin/true", StringComparison.Ordinal);
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
            ("Type", "exec"), ("ExecStart", "/usr/local/bin/mitmcache run"), ("DynamicUser", "yes"),
            ("StateDirectory", "mitmcache"), ("Environment", "MITMCACHE_DATA=/var/lib/mitmcache"),
            ("EnvironmentFile", "-/etc/mitmcache/mitmcache.env"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
            ("NoNewPrivileges", "yes"), ("PrivateTmp", "yes"), ("PrivateDevices", "yes"), ("CapabilityBoundingSet", ""),
            ("AmbientCapabilities", ""), ("LimitNOFILE", "65536"), ("Restart", "always"), ("RestartSec", "2"), ("UMask", "0077"),
        })
        {
            Assert.Contains((key, value), settings);
        }

        var families = settings.Single(s => s.Key == "RestrictAddressFamilies").Value.Split(' ');
        Assert.Superset(new HashSet<string> { "AF_INET", "AF_INET6", "AF_UNIX" }, families.ToHashSet());
        Assert.DoesNotContain(settings, s => s.Key == "MemoryDenyWriteExecute"); // the .NET JIT needs W+X pages
    }

    [Fact]
    public async Task ReadinessWait_ReturnsOnceReadyzAnswers200()
    {
        var calls = 0;
        var (app, port) = await LoopbackKestrel.StartAsync(null, 0, async context =>
        {
            var call = Interlocked.Increment(ref calls);
            context.Response.StatusCode = context.Request.Path == "/readyz" && call >= 3 ? 200 : 503;
            await context.Response.WriteAsync("cache: not yet\n");
        }, CancellationToken.None);
        await using var _ = app;
        var script = ReadinessScript(await File.ReadAllTextAsync(UnitPath));

        // 0.0.0.0 is probed on 127.0.0.1, as on a node-facing proxy.
        var result = await ProcessRunner.RunAsync("/bin/sh", ["-c", script],
            new Dictionary<string, string?> { ["MITMCACHE_LISTEN"] = $"0.0.0.0:{port}" }, TimeSpan.FromSeconds(40));

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(3, Volatile.Read(ref calls));
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

    /// <summary>
    /// The shell text systemd hands to <c>/bin/sh -c</c> for ExecStartPost: the single-quoted
    /// argument with <c>$$</c> and <c>%%</c> unescaped. The script has no other escapes on purpose.
    /// </summary>
    private static string ReadinessScript(string unit)
    {
        var value = ServiceSettings(unit).Single(s => s.Key == "ExecStartPost").Value;
        Assert.StartsWith("/bin/sh -c '", value, StringComparison.Ordinal);
        var body = value[(value.IndexOf('\'', StringComparison.Ordinal) + 1)..value.LastIndexOf('\'')];
        Assert.DoesNotContain("\\", body, StringComparison.Ordinal);
        return body.Replace("$$", "$", StringComparison.Ordinal).Replace("%%", "%", StringComparison.Ordinal);
    }

    [GeneratedRegex(@"\b(MITMCACHE_[A-Z_]+)\b")]
    private static partial Regex VariableName();

    [GeneratedRegex(@"^#(MITMCACHE_[A-Z_]+)=(.*)$", RegexOptions.Multiline)]
    private static partial Regex ExampleSetting();

    [GeneratedRegex("^MITMCACHE_", RegexOptions.Multiline)]
    private static partial Regex ActiveSetting();
}
