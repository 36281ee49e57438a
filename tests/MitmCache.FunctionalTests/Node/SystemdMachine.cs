using System.Diagnostics;
using System.Globalization;
using System.Runtime.Versioning;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Node;

/// <summary>
/// A real systemd as PID 1 of a private PID and mount namespace, sharing the network, booted into a
/// target that wants nothing. The machine is never touched: /etc and the dpkg database are copies,
/// /usr is an overlay whose writes stay in the stage, and /tmp, /run, /var/lib, /var/cache and
/// /var/log are tmpfs inside the namespace (systemd at boot would otherwise clean the real /tmp).
/// Packages can be installed with apt-get and dpkg as on a fresh host; /mnt holds the caller's files.
/// </summary>
[SupportedOSPlatform("linux")]
internal sealed class SystemdMachine : IAsyncDisposable
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(60);
    private readonly BackgroundProcess _unshare;

    private SystemdMachine(BackgroundProcess unshare, int initPid)
    {
        _unshare = unshare;
        InitPid = initPid;
    }

    public int InitPid { get; }

    /// <param name="stage">An empty directory for the copies and the overlay.</param>
    /// <param name="units">Unit files and drop-ins to add under /etc/systemd/system (relative path → content).</param>
    /// <param name="files">Other files to add under /etc (relative path → content).</param>
    /// <param name="mnt">A directory shown read-only at /mnt inside.</param>
    public static async Task<SystemdMachine> BootAsync(string stage, IReadOnlyDictionary<string, string> units,
        IReadOnlyDictionary<string, string> files, string mnt)
    {
        Directory.CreateDirectory(stage);
        var copy = await ProcessRunner.RunAsync("/bin/sh", ["-c", "cp -a /etc \"$0/etc\" && cp -a /var/lib/dpkg \"$0/dpkg\" && mkdir \"$0/usr-up\" \"$0/usr-work\"", stage]);
        Assert.True(copy.Succeeded, copy.ToString());

        var etc = Path.Combine(stage, "etc");
        var systemUnits = Path.Combine(etc, "systemd", "system");
        Directory.Delete(systemUnits, recursive: true); // none of the machine's own units
        Directory.CreateDirectory(systemUnits);
        await File.WriteAllTextAsync(Path.Combine(systemUnits, "mitmcache-test.target"), "[Unit]\nDescription=MitmCache under test\n");
        foreach (var masked in new[] { "systemd-journald.service", "systemd-journald.socket", "systemd-udevd.service", "tmp.mount",
            "systemd-tmpfiles-setup.service", "systemd-tmpfiles-setup-dev.service", "systemd-tmpfiles-clean.timer" })
        {
            File.CreateSymbolicLink(Path.Combine(systemUnits, masked), "/dev/null");
        }

        foreach (var (path, text) in units)
        {
            Write(Path.Combine(systemUnits, path), text);
        }

        foreach (var (path, text) in files)
        {
            Write(Path.Combine(etc, path), text);
        }

        // Everything from the host is bound before /tmp (where the stage lives) is covered.
        var boot = Path.Combine(stage, "boot.sh");
        await File.WriteAllTextAsync(boot, """
            set -e
            mount --bind "$1/etc" /etc
            mount -t overlay overlay -o "lowerdir=/usr,upperdir=$1/usr-up,workdir=$1/usr-work" /usr
            mount --bind -o ro "$2" /mnt
            for dir in /run /var/lib /var/cache /var/log; do mount -t tmpfs tmpfs "$dir"; done
            mkdir -p /var/lib/dpkg /var/lib/apt/lists/partial /var/cache/apt/archives/partial /var/cache/debconf
            mount --bind "$1/dpkg" /var/lib/dpkg
            for dir in /tmp /var/tmp; do mount -t tmpfs tmpfs "$dir"; done
            exec env -i container=mitmcache-test /lib/systemd/systemd --system --unit=mitmcache-test.target
            """);
        var unshare = BackgroundProcess.Start("unshare",
            ["--pid", "--fork", "--mount", "--propagation", "private", "--mount-proc", "--uts", "--ipc", "/bin/sh", boot, stage, mnt]);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < s_wait)
        {
            var children = $"/proc/{unshare.Pid}/task/{unshare.Pid}/children";
            if (File.Exists(children) && int.TryParse(File.ReadAllText(children).Trim(), out var init)
                && File.Exists($"/proc/{init}/comm") && File.ReadAllText($"/proc/{init}/comm").Trim() == "systemd")
            {
                var machine = new SystemdMachine(unshare, init);
                // Booted: systemctl answers once the manager is up.
                if (await Poll.UntilAsync(async () => (await machine.TryRunAsync("systemctl", "is-system-running")).StdOut.Length > 0, s_wait))
                {
                    return machine;
                }
            }

            Assert.False(unshare.HasExited, $"systemd did not boot:\n{unshare.DescribeOutput()}");
            await Task.Delay(100);
        }

        unshare.Kill();
        throw new TimeoutException($"systemd did not boot:\n{unshare.DescribeOutput()}");
    }

    private static void Write(string path, string text)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }

    /// <summary>Runs a command inside; fails the test when it fails.</summary>
    public async Task<string> RunAsync(string command, params string[] args)
    {
        var result = await TryRunAsync(command, args);
        Assert.True(result.Succeeded, $"{command} {string.Join(' ', args)}: {result}");
        return result.StdOut.Trim();
    }

    public Task<ProcessResult> TryRunAsync(string command, params string[] args) =>
        ProcessRunner.RunAsync("nsenter", ["-t", InitPid.ToString(CultureInfo.InvariantCulture), "-m", "-p", "env", "DEBIAN_FRONTEND=noninteractive", command, .. args],
            timeout: TimeSpan.FromMinutes(2));

    /// <summary>Writes a file inside (through the bound /etc copy it is simply a file in the stage; this works for any path).</summary>
    public Task WriteFileAsync(string path, string text) =>
        RunAsync("/bin/sh", "-c", "mkdir -p \"$(dirname \"$0\")\" && printf '%s' \"$1\" > \"$0\"", path, text);

    public Task<string> PropertyAsync(string unit, string name) => RunAsync("systemctl", "show", unit, "-p", name, "--value");

    /// <summary>Waits until <c>systemctl show UNIT</c> lists every one of these <c>Name=value</c> lines.</summary>
    public async Task WaitForAsync(string unit, params string[] expected)
    {
        var shown = "";
        var reached = await Poll.UntilAsync(async () =>
        {
            shown = (await TryRunAsync("systemctl", "show", unit)).StdOut;
            var lines = shown.Split('\n');
            return expected.All(lines.Contains);
        }, s_wait);
        Assert.True(reached, $"{unit} never reached {string.Join(", ", expected)}:\n" +
            string.Join('\n', shown.Split('\n').Where(l => l.StartsWith("ActiveState=", StringComparison.Ordinal) || l.StartsWith("SubState=", StringComparison.Ordinal)
                || l.StartsWith("Result=", StringComparison.Ordinal) || l.StartsWith("NRestarts=", StringComparison.Ordinal) || l.StartsWith("StatusText=", StringComparison.Ordinal)))
            + "\n" + await LogAsync());
    }

    public async Task<string> LogAsync() => (await TryRunAsync("tail", "-n", "60", "/run/mitmcache.log")).StdOut;

    public async ValueTask DisposeAsync()
    {
        // PID 1 of the namespace dies, the kernel kills the rest, and the mounts go with the namespace.
        await ProcessRunner.RunAsync("kill", ["-9", InitPid.ToString(CultureInfo.InvariantCulture)]);
        _unshare.Dispose();
    }
}
