using System.Net;
using System.Net.Sockets;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Cli;

/// <summary>
/// What an operator gets wrong, through the real executable: a mistyped verb, a busy port, a bad
/// <c>--upstream-ca</c>, help and version, a data directory of another user, and stopping with SIGTERM.
/// Each answer is a clear message and an exit code, never a stack trace or a proxy started by accident.
/// </summary>
public sealed class OperatorMistakeTests
{
    /// <summary>Keeps a command that wrongly starts a proxy off the shared port 3128 and out of the working directory.</summary>
    private static Dictionary<string, string?> Contained(string data) =>
        new() { ["MITMCACHE_DATA"] = data, ["MITMCACHE_LISTEN"] = "127.0.0.1:0" };

    [Fact]
    public async Task MistypedVerb_RefusedWithoutStartingAProxy()
    {
        using var dir = TempDir.Create("mitmcache-verb");
        var data = dir.Combine("data");

        var typo = await MitmCacheCli.RunAsync(["cahce", "stats"], Contained(data), TimeSpan.FromSeconds(30));
        var stray = await MitmCacheCli.RunAsync(["run", "stats"], Contained(data), TimeSpan.FromSeconds(30));

        Assert.Equal(2, typo.ExitCode);
        Assert.Contains("unknown command 'cahce'", typo.StdErr, StringComparison.Ordinal);
        Assert.Contains("cache", typo.StdErr, StringComparison.Ordinal);
        Assert.Equal(2, stray.ExitCode);
        Assert.Contains("'stats'", stray.StdErr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(data), "no data directory (and no CA) for a command that was not run");
    }

    [Fact]
    public async Task BusyListenPort_Exit2BeforeAnythingIsCreated()
    {
        using var dir = TempDir.Create("mitmcache-busy");
        using var busy = new TcpListener(IPAddress.Loopback, 0);
        busy.Start();
        var port = ((IPEndPoint)busy.LocalEndpoint).Port;

        var result = await MitmCacheCli.RunAsync(["run", "--listen", $"127.0.0.1:{port}", "--data", dir.Combine("data")], null, TimeSpan.FromSeconds(60));

        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"--listen 127.0.0.1:{port}", result.StdErr, StringComparison.Ordinal);
        Assert.Contains("in use", result.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.ToString(), StringComparison.Ordinal);
        Assert.False(File.Exists(dir.Combine("data", "ca", "root.key")), "no CA is created for a proxy that cannot listen");
    }

    [Fact]
    public async Task UpstreamCaWithoutCertificateOrADirectory_RefusedWithTheReason()
    {
        using var dir = TempDir.Create("mitmcache-upstream-ca");
        var empty = dir.Combine("empty.pem");
        await File.WriteAllTextAsync(empty, "not a certificate\n");

        var noCertificate = await MitmCacheCli.RunAsync(["run", "--upstream-ca", empty], Contained(dir.Combine("data")), TimeSpan.FromSeconds(30));
        var directory = await MitmCacheCli.RunAsync(["run", "--upstream-ca", dir.Path], Contained(dir.Combine("data")), TimeSpan.FromSeconds(30));

        Assert.Equal(2, noCertificate.ExitCode);
        Assert.Contains($"--upstream-ca '{empty}'", noCertificate.StdErr, StringComparison.Ordinal);
        Assert.Contains("no certificate", noCertificate.StdErr, StringComparison.Ordinal);
        Assert.Equal(2, directory.ExitCode);
        Assert.Contains("is a directory", directory.StdErr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("version")]
    [InlineData("--version")]
    [InlineData("--help")]
    [InlineData("help")]
    [InlineData("run", "--help")]
    [InlineData("cache", "--help")]
    [InlineData("cache", "prune", "--help")]
    [InlineData("ca", "--help")]
    public async Task HelpAndVersion_Exit0(params string[] args)
    {
        using var dir = TempDir.Create("mitmcache-help");

        var result = await MitmCacheCli.RunAsync(args, Contained(dir.Combine("data")), TimeSpan.FromSeconds(30));

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.NotEqual("", (result.StdOut + result.StdErr).Trim());
        Assert.False(Directory.Exists(dir.Combine("data")));
    }

    [Fact]
    public async Task RunHelp_ListsEveryOptionWithItsEnvironmentVariable()
    {
        var result = await MitmCacheCli.RunAsync(["run", "--help"], null, TimeSpan.FromSeconds(30));

        Assert.Equal(0, result.ExitCode);
        foreach (var (flag, variable) in new[] { ("--listen", "MITMCACHE_LISTEN"), ("--max-cache-size", "MITMCACHE_MAX_CACHE_SIZE"), ("--config", "MITMCACHE_CONFIG") })
        {
            Assert.Contains(flag, result.StdOut, StringComparison.Ordinal);
            Assert.Contains(variable, result.StdOut, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Sigterm_ShutdownIsLogged()
    {
        using var dir = TempDir.Create("mitmcache-sigterm");
        using var proxy = await ProxyProcess.StartAsync(dir.Combine("data"), FreePort.Get());

        var exit = await proxy.TerminateAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, exit);
        Assert.Contains("Shutting down", proxy.Output, StringComparison.Ordinal);
        Assert.Contains("MitmCache stopped", proxy.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServiceUserOnRootsDataDirectory_ClearErrorAndTheCaIsKept()
    {
        using var dir = TempDir.Create("mitmcache-owner");
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0b111_101_101); // 0755: another user may reach into it
        var data = dir.Combine("data");
        Assert.True((await MitmCacheCli.RunAsync("ca", "init", "--data", data)).Succeeded);
        var key = await File.ReadAllBytesAsync(Path.Combine(data, "ca", "root.key"));

        var result = await AsNobodyAsync("run", "--data", data, "--listen", "127.0.0.1:0", "--on-cache-failure", "passthrough");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains(data, result.StdErr, StringComparison.Ordinal);
        Assert.Contains("owned by", result.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", result.ToString(), StringComparison.Ordinal);
        Assert.Equal(key, await File.ReadAllBytesAsync(Path.Combine(data, "ca", "root.key")));
    }

    [Fact]
    public async Task RootOnTheServiceUsersDataDirectory_RefusedWithoutLeavingRootOwnedFiles()
    {
        using var dir = TempDir.Create("mitmcache-owner");
        var data = dir.Combine("data");
        Directory.CreateDirectory(data);
        Assert.True((await ProcessRunner.RunAsync("chown", [$"{Nobody}:{Nobody}", data])).Succeeded);

        var result = await MitmCacheCli.RunAsync(["run", "--data", data], Contained(data), TimeSpan.FromSeconds(30));

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"owned by uid {Nobody}", result.StdErr, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(data));
    }

    private const int Nobody = 65534;

    /// <summary>The executable as an unprivileged user (nobody), as a service account would run it.</summary>
    private static Task<ProcessResult> AsNobodyAsync(params string[] args) =>
        ProcessRunner.RunAsync("setpriv", [$"--reuid={Nobody}", $"--regid={Nobody}", "--clear-groups", "dotnet", MitmCacheCli.EntryPoint, .. args],
            new Dictionary<string, string?> { ["HOME"] = "/tmp", ["MITMCACHE_PROXY"] = null, ["MITMCACHE_DATA"] = null }, TimeSpan.FromSeconds(30));
}
