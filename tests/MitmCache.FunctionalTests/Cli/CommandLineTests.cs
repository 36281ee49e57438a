using System.Security.Cryptography.X509Certificates;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Cli;

/// <summary>The real executable: option validation, exit codes, and the <c>ca</c> verbs.</summary>
public sealed class CommandLineTests
{
    private static readonly string Entry = typeof(MitmCache.Cli.RunVerb).Assembly.Location;

    private static Task<ProcessResult> MitmCacheAsync(IDictionary<string, string?>? env, params string[] args) =>
        ProcessRunner.RunAsync("dotnet", [Entry, .. args], env, TimeSpan.FromSeconds(60));

    [Fact]
    public async Task Run_NonLoopbackWithoutAllowListOrAuth_RefusesClearly()
    {
        using var dir = TempDir.Create("mitmcache-cli");

        var result = await MitmCacheAsync(null, "run", "--listen", "0.0.0.0:0", "--data", dir.Path);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("refusing to run an open proxy", result.StdErr, StringComparison.Ordinal);
        Assert.Contains("--allow-client", result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_SeveralBadOptions_ReportsEveryProblem()
    {
        using var dir = TempDir.Create("mitmcache-cli");

        var result = await MitmCacheAsync(new Dictionary<string, string?> { ["MITMCACHE_MANIFEST_POLICY"] = "sometimes" },
            "run", "--listen", "nowhere", "--data", dir.Path, "--max-cache-size", "lots", "--log-format", "xml", "--connect-to", "a:b");

        Assert.Equal(2, result.ExitCode);
        foreach (var option in new[] { "--listen", "--max-cache-size", "--log-format", "--connect-to", "--manifest-policy" })
        {
            Assert.Contains(option, result.StdErr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Run_ConfigFileEnvAndFlags_FlagsWinThenEnvThenFile()
    {
        using var dir = TempDir.Create("mitmcache-cli");
        var config = dir.Combine("config.json");
        await File.WriteAllTextAsync(config, """{ "listen": "bad-from-file", "logFormat": "bad-from-file", "maxCacheSize": "bad-from-file" }""");

        var result = await MitmCacheAsync(new Dictionary<string, string?> { ["MITMCACHE_LOG_FORMAT"] = "bad-from-env", ["MITMCACHE_LISTEN"] = "bad-from-env" },
            "run", "--config", config, "--data", dir.Path, "--listen", "bad-from-flag");

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("'bad-from-flag'", result.StdErr, StringComparison.Ordinal);     // listen: flag beats env and file
        Assert.Contains("'bad-from-env'", result.StdErr, StringComparison.Ordinal);      // log format: env beats file
        Assert.Contains("--max-cache-size 'bad-from-file'", result.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("listen 'bad-from-env'", result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CaInitWithPermit_ExportsNameConstrainedRoot_AndRefusesToReplace()
    {
        using var dir = TempDir.Create("mitmcache-cli");

        var init = await MitmCacheAsync(null, "ca", "init", "--data", dir.Path, "--permit", "example.com");
        var export = await MitmCacheAsync(null, "ca", "export", "--data", dir.Path);
        var again = await MitmCacheAsync(null, "ca", "init", "--data", dir.Path);

        Assert.True(init.Succeeded, init.StdErr);
        Assert.Contains("SHA-256 fingerprint", init.StdErr, StringComparison.Ordinal);
        Assert.True(export.Succeeded, export.StdErr);
        var root = X509Certificate2.CreateFromPem(export.StdOut);
        Assert.Contains(root.Extensions.Cast<X509Extension>(), e => e.Oid?.Value == "2.5.29.30" && e.Critical);
        Assert.True(root.Extensions.OfType<X509BasicConstraintsExtension>().Single().CertificateAuthority);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("already exists", again.StdErr, StringComparison.Ordinal);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(dir.Combine("ca", "root.key")));
    }

    [Fact]
    public async Task Run_WorldReadableCaKey_RefusesToStart()
    {
        using var dir = TempDir.Create("mitmcache-cli");
        Assert.True((await MitmCacheAsync(null, "ca", "init", "--data", dir.Path)).Succeeded);
        File.SetUnixFileMode(dir.Combine("ca", "root.key"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var result = await MitmCacheAsync(null, "run", "--data", dir.Path, "--listen", $"127.0.0.1:{FreePort.Get()}");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("chmod 600", result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_Defaults_ServeHealthAndCaThenExport()
    {
        using var dir = TempDir.Create("mitmcache-cli");
        var port = FreePort.Get();

        using var proxy = await ProxyProcess.StartAsync(dir.Combine("data"), port);
        using var http = new HttpClient();
        var served = await http.GetStringAsync($"{proxy.Url}/ca.crt");
        var exported = await MitmCacheAsync(null, "ca", "export", "--data", dir.Combine("data"));

        Assert.Equal(served, exported.StdOut);
        Assert.Equal("ok\n", await http.GetStringAsync($"{proxy.Url}/healthz"));
        const UnixFileMode ownerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        Assert.Equal(ownerOnly, File.GetUnixFileMode(dir.Combine("data")));
        Assert.Equal(ownerOnly, File.GetUnixFileMode(dir.Combine("data", "blobs")));
        Assert.Equal(ownerOnly, File.GetUnixFileMode(dir.Combine("data", "tmp")));
    }
}
