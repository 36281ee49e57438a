using System.Diagnostics;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Infrastructure;

/// <summary>The proxy as its own process (the built <c>mitmcache</c>), for kill -9 and restart tests.</summary>
public sealed class ProxyProcess : IDisposable
{
    private readonly BackgroundProcess _process;

    private ProxyProcess(BackgroundProcess process, int port, string dataDirectory)
    {
        _process = process;
        Port = port;
        DataDirectory = dataDirectory;
    }

    public int Port { get; }

    public string DataDirectory { get; }

    public string Url => $"http://127.0.0.1:{Port}";

    public string CaBundlePath => Path.Combine(DataDirectory, "ca", "root.crt");

    public string Output => _process.DescribeOutput();

    public static Task<ProxyProcess> StartAsync(string dataDirectory, int port, params string[] arguments) =>
        StartAsync(dataDirectory, port, wrap: null, arguments);

    /// <param name="wrap">Turns the proxy's command line into one that runs it, e.g. in a private mount namespace
    /// (it must exec the command, so that <see cref="Pid"/> stays the proxy's).</param>
    public static async Task<ProxyProcess> StartAsync(string dataDirectory, int port,
        Func<string, IReadOnlyList<string>, (string File, IReadOnlyList<string> Args)>? wrap, params string[] arguments)
    {
        var entry = typeof(MitmCache.Cli.RunVerb).Assembly.Location;
        string[] command = [entry, "run", "--listen", $"127.0.0.1:{port}", "--data", dataDirectory, "--log-format", "json", .. arguments];
        var (file, args) = wrap is null ? ("dotnet", command) : wrap("dotnet", command);
        var process = BackgroundProcess.Start(file, args);
        var proxy = new ProxyProcess(process, port, dataDirectory);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"mitmcache exited at start-up:\n{proxy.Output}");
            }

            try
            {
                if ((await http.GetAsync($"{proxy.Url}/readyz")).IsSuccessStatusCode)
                {
                    return proxy;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
            }

            await Task.Delay(100);
        }

        process.Kill();
        throw new TimeoutException($"mitmcache did not become ready:\n{proxy.Output}");
    }

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public void Kill() => _process.Kill();

    /// <summary>SIGTERM, as systemd stops a service; waits for the process to exit and returns its exit code.</summary>
    public async Task<int> TerminateAsync(TimeSpan timeout)
    {
        var signal = await ProcessRunner.RunAsync("kill", ["-TERM", _process.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        Assert.True(signal.Succeeded, signal.StdErr);
        Assert.True(await _process.WaitForExitAsync(timeout), $"mitmcache did not exit within {timeout} of SIGTERM:\n{Output}"); // its last lines read too
        return _process.ExitCode;
    }

    public int Pid => _process.Pid;

    public void Dispose() => _process.Dispose();
}
