using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Infrastructure;

/// <summary>
/// <c>--perf DIR</c>: records the proxy with Linux perf while one measured piece of work runs (software
/// <c>cpu-clock</c> events, which work in this VM; DWARF call graphs, because OpenSSL's assembly has no
/// frame pointers but does have CFI), then sorts every sample into the cost it belongs to by its stack
/// (<see cref="Categories"/>) and writes <c>DIR/NAME.md</c>: CPU-seconds per category, per GiB or per
/// request. JIT-compiled frames are named through <c>DOTNET_PerfMapEnabled=1</c> (with
/// <c>DOTNET_EnableWriteXorExecute=0</c>, else they run from an unnamed mapping), which
/// <see cref="BenchWorld.StartProxyAsync"/> sets when profiling. Profiling changes the proxy's code placement
/// a little; measured rows come from runs without perf attached. The raw <c>DIR/NAME.data</c> stays for
/// <c>perf report -i</c>.
/// </summary>
internal static class PerfProfile
{
    /// <summary>
    /// The first category whose pattern matches any frame of a sample's stack takes the sample, so the
    /// order matters: a memcpy inside SSL_write is TLS encrypt, a futex inside a socket receive is the receive.
    /// </summary>
    private static readonly (string Category, string[] Frames)[] Categories =
    [
        ("TLS handshake (SSL_do_handshake)", ["CryptoNative_SslDoHandshake"]),
        ("TLS decrypt (SSL_read: from upstream, and the client's requests)", ["CryptoNative_SslRead"]),
        ("TLS encrypt (SSL_write: to the client, and requests upstream)", ["CryptoNative_SslWrite"]),
        ("SHA-256 (IncrementalHash)", ["SHA256_", "sha256_block", "CryptoNative_EvpDigest", "AppendHashData"]),
        ("leaf minting and other OpenSSL calls", ["CryptoNative_", "libcrypto.so", "libssl.so"]),
        ("fsync", ["vfs_fsync", "__x64_sys_fsync", "__x64_sys_fdatasync", "FlushToDisk"]),
        ("writeback start (sync_file_range)", ["sync_file_range", "SyncFileRange"]),
        ("file write (pwrite into the temp file)", ["__x64_sys_pwrite64", "RandomAccess::Write", "RandomAccess::WriteAtOffset"]),
        ("file read (pread: the temp file or the cached blob read back)", ["__x64_sys_pread64", "RandomAccess::Read", "RandomAccess::ReadAtOffset"]),
        ("file open/close/stat, rename, directory work", ["do_sys_openat2", "__x64_sys_close", "__x64_sys_newfstat", "__x64_sys_statx", "__x64_sys_rename", "__x64_sys_unlink"]),
        ("socket receive (recv syscalls)", ["__x64_sys_recvfrom", "__x64_sys_recvmsg", "tcp_recvmsg"]),
        ("socket send (send syscalls)", ["__x64_sys_sendto", "__x64_sys_sendmsg", "tcp_sendmsg"]),
        ("log output (writes to stdout)", ["__x64_sys_write"]),
        ("socket accept, connect, close, shutdown", ["__x64_sys_accept", "__x64_sys_connect", "__x64_sys_shutdown", "__x64_sys_socket", "sock_close"]),
        ("epoll, futex, thread-pool wake-ups, context switches", ["epoll_wait", "__x64_sys_epoll", "__x64_sys_futex", "__x64_sys_sched_yield", "LowLevelLifoSemaphore", "finish_task_switch", "schedule"]),
        ("JIT compiler", ["libclrjit.so"]),
        ("Kestrel HTTP/1.1 and HTTP/2 (parsing, framing, response writing)", ["Microsoft.AspNetCore.Server.Kestrel.Core.Internal.Http"]),
        ("HttpClient (SocketsHttpHandler: upstream response parsing)", ["[System.Net.Http]"]),
        ("SslStream framing (managed)", ["[System.Net.Security]"]),
        ("pipes (System.IO.Pipelines, Kestrel transport)", ["[System.IO.Pipelines]", "Kestrel.Transport.Sockets"]),
        ("memory copies (memmove, memset)", ["memmove", "memcpy", "memset", "Buffer::Memmove", "SpanHelpers::"]),
        ("MitmCache's own code", ["[MitmCache.Core]", "[mitmcache]"]),
        ("logging (Serilog, Microsoft.Extensions.Logging)", ["[Serilog", "[Microsoft.Extensions.Logging"]),
        ("runtime native code (libcoreclr: GC, allocation, stubs, type loads)", ["libcoreclr.so"]),
        ("other managed code", ["perf-", ".dll"]),
        ("other kernel", ["[kernel.kallsyms]"]),
    ];

    private const string Other = "other native code";

    /// <summary>Runs <paramref name="work"/>; with <c>--perf</c>, under perf record attached to <paramref name="pid"/>, then writes the breakdown.</summary>
    /// <param name="unit">What one unit of <paramref name="units"/> is ("GiB", "request"), for the per-unit column.</param>
    public static async Task<T> RecordAsync<T>(BenchWorld world, int pid, string name, double units, string unit, Func<Task<T>> work)
    {
        if (world.Options.PerfDirectory is not { } dir)
        {
            return await work();
        }

        Directory.CreateDirectory(dir);
        var data = Path.Combine(dir, name + ".data");
        var before = ProcStat.CpuTime(pid);
        using var perf = BackgroundProcess.Start("perf", ["record", "-F", "499", "--call-graph", Environment.GetEnvironmentVariable("BENCH_PERF_CALLGRAPH") ?? "dwarf,16384", "-p", pid.ToString(CultureInfo.InvariantCulture), "-o", data]);
        await Task.Delay(500); // perf attaches to every thread before the work starts
        T result;
        try
        {
            result = await work();
        }
        finally
        {
            Interrupt(perf.Pid);
            for (var wait = 0; wait < 600 && !perf.HasExited; wait++)
            {
                await Task.Delay(100);
            }
        }

        var cpu = (ProcStat.CpuTime(pid) - before).TotalSeconds;
        var text = dir + "/" + name + ".txt";
        var script = await ProcessRunner.RunAsync("sh", ["-c", $"perf script -F period,ip,sym,dso -i '{data}' > '{text}' 2>/dev/null"], env: null,
            timeout: TimeSpan.FromMinutes(10), ct: CancellationToken.None);
        if (!script.Succeeded)
        {
            throw new InvalidOperationException($"perf script failed: {script}");
        }

        var report = Breakdown(File.ReadLines(text), name, units, unit, cpu);
        File.Delete(text);
        await File.WriteAllTextAsync(Path.Combine(dir, name + ".md"), report);
        Console.Error.WriteLine(report);
        return result;
    }

    /// <summary>Sorts the samples of <c>perf script -F period,ip,sym,dso</c> output into <see cref="Categories"/>; a markdown table.</summary>
    public static string Breakdown(IEnumerable<string> lines, string name, double units, string unit, double processCpu)
    {
        var nanos = new Dictionary<string, long>();
        var leaves = new Dictionary<(string Category, string Leaf), long>();
        var frames = new List<string>();
        long period = 0;
        void Flush()
        {
            if (period > 0)
            {
                var category = Categories.FirstOrDefault(c => frames.Any(f => c.Frames.Any(p => f.Contains(p, StringComparison.Ordinal)))).Category ?? Other;
                nanos[category] = nanos.GetValueOrDefault(category) + period;
                var leaf = (category, frames.Count == 0 ? "?" : Symbol(frames[0]));
                leaves[leaf] = leaves.GetValueOrDefault(leaf) + period;
            }

            frames.Clear();
            period = 0;
        }

        foreach (var line in lines)
        {
            if (line.Length == 0)
            {
                continue;
            }

            if (line[0] != '\t')
            {
                Flush();
                period = long.Parse(line.Trim(), CultureInfo.InvariantCulture);
            }
            else
            {
                frames.Add(line);
            }
        }

        Flush();
        var total = nanos.Values.Sum() / 1e9;
        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"Profile {name}: {total:0.00} CPU-s sampled ({processCpu:0.00} s by /proc) over {units:0.##} {unit}(s)");
        report.AppendLine();
        // Per request the figures are milliseconds; per GiB, seconds.
        var (scale, measure) = total / units < 0.1 ? (1e6, "ms") : (1e9, "s");
        report.AppendLine(CultureInfo.InvariantCulture, $"| where the CPU goes | CPU-{measure} per {unit} | share | hottest leaf frames |");
        report.AppendLine("|---|---|---|---|");
        foreach (var (category, ns) in nanos.OrderByDescending(p => p.Value))
        {
            var hottest = string.Join("; ", leaves.Where(l => l.Key.Category == category).OrderByDescending(l => l.Value).Take(3)
                .Select(l => $"{l.Key.Leaf} {100.0 * l.Value / ns:0}%"));
            report.AppendLine(CultureInfo.InvariantCulture, $"| {category} | {ns / scale / units:0.000} | {100.0 * ns / 1e9 / total:0.0}% | {hottest} |");
        }

        report.AppendLine(CultureInfo.InvariantCulture, $"| **total** | {total * 1e9 / scale / units:0.000} | 100% | |");
        return report.ToString();
    }

    /// <summary>A frame line's symbol, shortened: <c>Type::Method</c> for managed code, the library for unnamed native code.</summary>
    private static string Symbol(string frame)
    {
        var text = frame.Trim();
        var space = text.IndexOf(' ', StringComparison.Ordinal);
        text = space < 0 ? text : text[(space + 1)..];
        var dso = text.LastIndexOf(" (", StringComparison.Ordinal);
        var symbol = dso < 0 ? text : text[..dso];
        if (symbol.StartsWith("[unknown]", StringComparison.Ordinal) && dso >= 0)
        {
            return Path.GetFileName(text[(dso + 2)..].TrimEnd(')'));
        }

        var paren = symbol.IndexOf('(', StringComparison.Ordinal);
        symbol = paren > 0 ? symbol[..paren] : symbol;
        symbol = symbol[(symbol.LastIndexOf(' ') + 1)..];
        var plus = symbol.LastIndexOf('+');
        return (plus > 0 ? symbol[..plus] : symbol).Replace("|", "/", StringComparison.Ordinal);
    }

    private static void Interrupt(int pid)
    {
        const int SigInt = 2;
        _ = Kill(pid, SigInt);
    }

    [DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);
}
