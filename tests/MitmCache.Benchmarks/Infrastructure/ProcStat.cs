using System.Globalization;

namespace MitmCache.Benchmarks.Infrastructure;

/// <summary>Reads /proc/PID/stat: CPU time and parent of a process.</summary>
internal static class ProcStat
{
    /// <summary>utime + stime; zero when the process is gone.</summary>
    public static TimeSpan CpuTime(int pid) => CpuTime(pid.ToString(CultureInfo.InvariantCulture));

    /// <summary>utime + stime of <c>/proc/PATH/stat</c>, PATH a pid or <c>PID/task/TID</c>; zero when it is gone.</summary>
    public static TimeSpan CpuTime(string path)
    {
        var fields = Fields(path);
        return fields is null ? TimeSpan.Zero
            : TimeSpan.FromSeconds((long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0); // USER_HZ
    }

    /// <summary>The first process whose command line contains <paramref name="fragment"/>, or -1.</summary>
    public static int FindByCommandLine(string fragment)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                if (int.TryParse(Path.GetFileName(dir), out var pid)
                    && File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ').Contains(fragment, StringComparison.Ordinal))
                {
                    return pid;
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }

        return -1;
    }

    /// <summary>
    /// Runs <paramref name="round"/> until two rounds in a row leave process <paramref name="pid"/>'s JIT thread nearly
    /// idle, at most 30 rounds (why: <see cref="ProxyRunner.WarmUpAsync"/>).
    /// </summary>
    /// <returns>How many rounds it took.</returns>
    public static async Task<int> WarmUpAsync(int pid, Func<int, Task> round)
    {
        var quiet = 0;
        for (var i = 0; i < 30; i++)
        {
            var before = JitCpuTime(pid);
            await round(i);
            await Task.Delay(250); // the compiler starts a batch after a 100 ms quiet period
            quiet = JitCpuTime(pid) - before < TimeSpan.FromMilliseconds(20) ? quiet + 1 : 0;
            if (quiet == 2)
            {
                return i + 1;
            }
        }

        return 30;
    }

    /// <summary>CPU time of a .NET process's tiered compilation thread (its name in /proc is cut to ".NET Tiered Com").</summary>
    private static TimeSpan JitCpuTime(int pid)
    {
        foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            try
            {
                if (File.ReadAllText(Path.Combine(task, "comm")).StartsWith(".NET Tiered Com", StringComparison.Ordinal))
                {
                    return CpuTime($"{pid}/task/{Path.GetFileName(task)}");
                }
            }
            catch (IOException)
            {
            }
        }

        return TimeSpan.Zero;
    }

    public static int ParentOf(int pid) => Fields(pid.ToString(CultureInfo.InvariantCulture)) is { } fields ? int.Parse(fields[1], CultureInfo.InvariantCulture) : -1;

    /// <summary>The fields after "(comm)", so index 0 is the state, 1 the parent, 11 utime, 12 stime.</summary>
    private static string[]? Fields(string path)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{path}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
