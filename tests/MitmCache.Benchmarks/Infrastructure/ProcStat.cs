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
