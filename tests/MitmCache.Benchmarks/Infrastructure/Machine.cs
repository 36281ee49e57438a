namespace MitmCache.Benchmarks.Infrastructure;

/// <summary>The machine line printed above the table: cores, CPU model, memory, load, kernel.</summary>
internal static class Machine
{
    public static string Describe()
    {
        var model = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "?";
        var memory = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "?";
        var load = File.ReadAllText("/proc/loadavg").Split(' ')[..3];
        var kernel = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        return $"Machine: {Environment.ProcessorCount} cores ({model}), {memory} memory, Linux {kernel}, .NET {Environment.Version}, " +
            $"load average at the end {string.Join(' ', load)}; {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC.";
    }
}
