using System.Diagnostics;
using System.Text;
using MitmCache.Benchmarks.Infrastructure;
using MitmCache.Benchmarks.Scenarios;

namespace MitmCache.Benchmarks;

/// <summary>
/// Runs the benchmark scenarios against real peers on loopback and prints one markdown table.
/// Every figure is set against a baseline measured in the same run, interleaved, because absolute
/// numbers on a shared 2-core machine are noise. See readme.md and run.sh.
/// </summary>
internal static class Program
{
    private static readonly (int Number, string Name, Func<BenchWorld, ResultTable, Task> Run)[] Scenarios =
    [
        (8, "leaf mint", LeafMintScenario.RunAsync),
        (5, "handshakes", HandshakeScenario.RunAsync),
        (1, "warm hit", WarmHitScenario.RunAsync),
        (10, "cpu floor", CpuFloorScenario.RunAsync),
        (2, "cold miss", ColdMissScenario.RunAsync),
        (6, "memory", MemoryScenario.RunAsync),
        (4, "concurrency", ConcurrencyScenario.RunAsync),
        (3, "image pull", ImagePullScenario.RunAsync),
        (7, "index scale", IndexScaleScenario.RunAsync),
        (9, "blob store", BlobStoreScenario.RunAsync),
        (11, "outage", OutageScenario.RunAsync),
        (12, "blob tier", BlobTierScenario.RunAsync),
        (13, "cluster", ClusterScenario.RunAsync),
    ];

    public static async Task<int> Main(string[] args)
    {
        if (args is [KestrelFloor.Verb, ..])
        {
            return await KestrelFloor.ServeAsync(args);
        }

        BenchOptions options;
        try
        {
            options = BenchOptions.Parse(args);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or IndexOutOfRangeException)
        {
            await Console.Error.WriteLineAsync(ex.Message);
            return 2;
        }

        var clock = Stopwatch.StartNew();
        var table = new ResultTable();
        var failures = 0;
        await using (var world = await BenchWorld.StartAsync(options))
        {
            if (options.HoldSeconds is { } hold)
            {
                await ProfileHold.RunAsync(world, hold);
                return 0;
            }

            foreach (var (number, name, run) in Scenarios.Where(s => options.Runs(s.Number)))
            {
                Console.Error.WriteLine($"[{clock.Elapsed:mm\\:ss}] scenario {number}: {name}");
                try
                {
                    await run(world, table);
                }
                catch (Exception ex) when (ex is InvalidOperationException or IOException or HttpRequestException or TimeoutException
                    or System.Security.Authentication.AuthenticationException or System.Net.Sockets.SocketException)
                {
                    failures++;
                    table.Add(new ResultRow($"{number} {name}", "FAILED", ex.GetType().Name, "—", "—", "—", "FAILED"));
                    table.Note($"scenario {number} failed: {ex.Message.Split('\n')[0]}");
                    Console.Error.WriteLine(ex);
                }
            }
        }

        var report = new StringBuilder();
        report.AppendLine(Machine.Describe());
        report.AppendLine();
        report.AppendLine(table.ToMarkdown());
        report.AppendLine($"Ratios are MitmCache ÷ baseline (for times: baseline time ÷ MitmCache time, so above 1 is faster); medians of {options.Repetitions} interleaved repetitions; total run {clock.Elapsed.TotalMinutes:0.0} min.");
        Console.WriteLine(report);
        if (options.Output is { } output)
        {
            await File.WriteAllTextAsync(output, report.ToString());
        }

        return failures == 0 ? 0 : 1;
    }
}
