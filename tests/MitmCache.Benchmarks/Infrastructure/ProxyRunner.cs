using System.Diagnostics;
using System.Globalization;
using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Infrastructure;

/// <summary>
/// MitmCache as its own process (<c>dotnet mitmcache.dll run ...</c>, the Release build), so it does not
/// share the benchmark's GC and its memory can be read from <c>/proc/PID/status</c>.
/// </summary>
internal sealed class ProxyRunner : IDisposable
{
    private readonly BackgroundProcess _process;

    private ProxyRunner(BackgroundProcess process, int port, string dataDirectory)
    {
        _process = process;
        Port = port;
        DataDirectory = dataDirectory;
    }

    public int Port { get; }

    public int Pid => _process.Pid;

    public string DataDirectory { get; }

    /// <summary><c>http://127.0.0.1:PORT</c>, for curl's <c>-x</c> and HTTPS_PROXY.</summary>
    public string Url => $"http://127.0.0.1:{Port}";

    /// <summary>The proxy's root CA (PEM), created on first start in the data directory.</summary>
    public string CaPath => Path.Combine(DataDirectory, "ca", "root.crt");

    public string Output => _process.DescribeOutput();

    /// <param name="arguments">Everything after <c>run --listen ... --data ...</c>.</param>
    /// <param name="env">Extra environment variables (say, <c>DOTNET_PerfMapEnabled</c> for perf).</param>
    public static async Task<ProxyRunner> StartAsync(string proxyDll, string dataDirectory, IEnumerable<string> arguments, IDictionary<string, string?>? env = null)
    {
        var args = arguments.ToArray();
        for (var attempt = 1; ; attempt++)
        {
            var port = FreePort.Get();
            var process = BackgroundProcess.Start("dotnet",
                [proxyDll, "run", "--listen", $"127.0.0.1:{port}", "--data", dataDirectory, .. args], env);
            var proxy = new ProxyRunner(process, port, dataDirectory);
            if (await proxy.WaitReadyAsync())
            {
                return proxy;
            }

            var output = proxy.Output;
            proxy.Dispose();
            if (attempt == 3)
            {
                throw new InvalidOperationException($"mitmcache did not become ready:\n{output}");
            }
        }
    }

    private async Task<bool> WaitReadyAsync()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30) && !_process.HasExited)
        {
            try
            {
                using var response = await http.GetAsync(new Uri($"{Url}/readyz"));
                if (response.IsSuccessStatusCode)
                {
                    return true;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or System.Net.Sockets.SocketException)
            {
                // Not listening yet. A connection the listener drops as it starts can surface as a bare
                // SocketException (ENOTCONN while HttpClient reads the new socket's remote end point).
            }

            await Task.Delay(50);
        }

        return false;
    }

    /// <summary>VmRSS and VmHWM (peak) of the proxy process, in bytes.</summary>
    public (long Rss, long Peak) Memory()
    {
        long rss = 0, peak = 0;
        foreach (var line in File.ReadLines($"/proc/{Pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                rss = Kilobytes(line);
            }
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                peak = Kilobytes(line);
            }
        }

        return (rss, peak);
    }

    /// <summary>Resets VmHWM to the current RSS (<c>echo 5 &gt; /proc/PID/clear_refs</c>), so a phase's own peak can be read.</summary>
    public void ResetPeak() => File.WriteAllText($"/proc/{Pid}/clear_refs", "5");

    /// <summary>
    /// Runs <paramref name="round"/> until two rounds in a row pass with the JIT's background thread (".NET Tiered
    /// Compilation") nearly idle, at most 30 rounds. With tiered PGO a hot method is compiled up to three times
    /// after ReadyToRun (instrumented, then optimised), thousands of methods in all, and a measurement started
    /// before that settles counts the compiling as the path's own cost (0.9 CPU-s of a cold 1 GiB miss, 40% of
    /// a handshake round, in profiles). A proxy that has been up for a while has none of it.
    /// </summary>
    /// <returns>How many rounds it took.</returns>
    /// <remarks>
    /// Two quiet rounds in a row: right after the first round the compiler has not started yet (it waits for
    /// call counts and a quiet spell), so one quiet round alone said "settled" while 0.7 CPU-s of compiling
    /// was still to come in the measured fill.
    /// </remarks>
    public Task<int> WarmUpAsync(Func<int, Task> round) => ProcStat.WarmUpAsync(Pid, round);

    /// <summary>User + system CPU time the proxy has used so far (from /proc/PID/stat).</summary>
    public TimeSpan CpuTime() => ProcStat.CpuTime(Pid);

    private static long Kilobytes(string line) =>
        long.Parse(line.Split(':', 2)[1].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;

    public void Dispose() => _process.Dispose();
}
