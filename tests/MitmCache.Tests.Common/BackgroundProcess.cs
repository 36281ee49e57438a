using System.Collections.Concurrent;
using System.Diagnostics;

namespace MitmCache.Tests.Common;

/// <summary>A long-running child process (a server) whose output lines are collected; killed by PID on dispose.</summary>
public sealed class BackgroundProcess : IDisposable
{
    private readonly Process _process;

    private BackgroundProcess(Process process) => _process = process;

    public int Pid => _process.Id;

    /// <summary>The exit code, once <see cref="HasExited"/>.</summary>
    public int ExitCode => _process.ExitCode;

    public bool HasExited => _process.HasExited;

    public ConcurrentQueue<string> StdOut { get; } = new();

    public ConcurrentQueue<string> StdErr { get; } = new();

    /// <param name="env">As for <see cref="ProcessRunner.RunAsync"/>: null removes, CA and proxy variables are not inherited.</param>
    /// <param name="onLine">Called for every output line as it arrives (stdout and stderr alike), after it is queued.</param>
    public static BackgroundProcess Start(string file, IEnumerable<string> args,
        IDictionary<string, string?>? env = null, string? workingDirectory = null, Action<string>? onLine = null)
    {
        var info = ProcessEnvironment.CreateStartInfo(file, args, env);
        info.WorkingDirectory = workingDirectory ?? "";
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var result = new BackgroundProcess(process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } line)
            {
                result.StdOut.Enqueue(line);
                onLine?.Invoke(line);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is { } line)
            {
                result.StdErr.Enqueue(line);
                onLine?.Invoke(line);
            }
        };
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return result;
    }

    /// <summary>Stdout and stderr so far, for failure messages.</summary>
    public string DescribeOutput() =>
        $"--- stdout\n{string.Join('\n', StdOut)}\n--- stderr\n{string.Join('\n', StdErr)}";

    /// <summary>
    /// Waits until the process has exited and its output has been read to the end (<see cref="HasExited"/> turns true
    /// before the last lines are queued); false if it is still running after <paramref name="timeout"/>.
    /// </summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(deadline.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>SIGKILL to the process tree, then wait until it is gone (its sockets are closed).</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Exited between the check and the kill.
        }

        _process.WaitForExit();
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }
}
