using System.Net;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Hardening;

/// <summary>The resource-limit options through the real executable: flags, environment and config file.</summary>
public sealed class LimitOptionsCliTests
{
    private static readonly string Entry = typeof(MitmCache.Cli.RunVerb).Assembly.Location;

    [Fact]
    public async Task Run_BadLimitOptionsFromEachSource_AllReportedExit2()
    {
        using var dir = TempDir.Create("mitmcache-limits");
        var config = dir.Combine("config.json");
        await File.WriteAllTextAsync(config, """{ "maxConnectionsPerClient": "lots" }""");

        var result = await ProcessRunner.RunAsync("dotnet",
            [Entry, "run", "--data", dir.Path, "--config", config, "--max-connections", "0", "--header-timeout", "soon"],
            new Dictionary<string, string?> { ["MITMCACHE_TUNNEL_IDLE_TIMEOUT"] = "never" }, TimeSpan.FromSeconds(60));

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--max-connections '0'", result.StdErr, StringComparison.Ordinal);
        Assert.Contains("--header-timeout 'soon'", result.StdErr, StringComparison.Ordinal);
        Assert.Contains("--tunnel-idle-timeout 'never'", result.StdErr, StringComparison.Ordinal);
        Assert.Contains("--max-connections-per-client 'lots'", result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_PerClientCapFromFlag_ThirdConnectionGets503()
    {
        using var dir = TempDir.Create("mitmcache-limits");
        using var proxy = await ProxyProcess.StartAsync(dir.Combine("data"), FreePort.Get(), "--max-connections-per-client", "2", "--header-timeout", "30s");
        var client = IPAddress.Parse("127.0.0.2"); // readiness polling used 127.0.0.1
        await using var first = await RawProxyConnection.OpenAsync(proxy.Port, client);
        await using var second = await RawProxyConnection.OpenAsync(proxy.Port, client);
        Assert.Equal(200, (await first.RoundTripAsync("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", TimeSpan.FromSeconds(10)))?.Status);
        Assert.Equal(200, (await second.RoundTripAsync("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", TimeSpan.FromSeconds(10)))?.Status);

        await using var third = await RawProxyConnection.OpenAsync(proxy.Port, client);
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var refused = await third.Reader.ReadAsync(headRequest: false, cancel.Token);

        Assert.Equal(503, refused?.Status);
        Assert.Contains("--max-connections-per-client 2", refused!.BodyText, StringComparison.Ordinal);
        await Poll.UntilAsync(() => proxy.Output.Contains("Refused a connection", StringComparison.Ordinal), TimeSpan.FromSeconds(5)); // through a pipe
        Assert.Contains("Refused a connection", proxy.Output, StringComparison.Ordinal);
    }
}
