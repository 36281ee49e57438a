using MitmCache.Benchmarks.Infrastructure;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 10. The CPU floor of a cold miss: the .NET primitives a cold fill cannot do without, each alone on
/// 1 GiB (<see cref="CpuFloor"/>), in CPU-seconds per GiB. Scenario 2 sets the proxy's CPU per GiB on a
/// cold miss against their sum, measured in the same run.
/// </summary>
internal static class CpuFloorScenario
{
    public static async Task RunAsync(BenchWorld world, ResultTable table)
    {
        var floor = await world.CpuFloorAsync();
        const string Label = "10 cpu floor";
        table.Add(Row(Label, $"TLS receive + decrypt from upstream (SslStream client, {floor.UpstreamSuite}, loopback TCP)", floor.Decrypt));
        table.Add(Row(Label, "SHA-256 (IncrementalHash, 64 KiB appends)", floor.Sha256));
        table.Add(Row(Label, $"file write, 64 KiB writes + writeback every {Writeback()} MiB", floor.Write));
        table.Add(new ResultRow(Label, "fsync after the write: CPU per GiB (wall)", $"{floor.Fsync:0.00} s ({floor.FsyncWall:0.00} s)", "—", "—", "—", "—"));
        table.Add(Row(Label, $"TLS encrypt + send to the client (SslStream server, 256 KiB writes, {floor.ClientSuite}, the suite curl negotiates)", floor.Encrypt));
        table.Add(Row(Label, "**floor**: decrypt + SHA-256 + write + fsync + encrypt", floor.Sum));
        table.Add(Row(Label, "not in the floor: reading the file back from the page cache (256 KiB reads)", floor.ReadBack));
    }

    private static ResultRow Row(string label, string metric, double cpuPerGiB) =>
        new(label, $"{metric}: CPU-s per GiB", $"{cpuPerGiB:0.00} s", "—", "—", "—", "—");

    private static long Writeback() => MitmCache.Caching.Writeback.Stride >> 20;
}
