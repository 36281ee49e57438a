using System.Diagnostics;

namespace MitmCache.Tests.Common;

/// <summary>Runs a short-lived command to completion and captures its output.</summary>
public static class ProcessRunner
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(2);

    /// <param name="env">Variables to set; a null value removes the variable. CA and proxy variables are never inherited.</param>
    /// <param name="timeout">On expiry the process tree is killed and ExitCode is -1.</param>
    /// <param name="ct">On cancellation the process tree is killed and the cancellation is thrown.</param>
    public static async Task<ProcessResult> RunAsync(string file, IEnumerable<string> args,
        IDictionary<string, string?>? env = null, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        using var process = new Process { StartInfo = ProcessEnvironment.CreateStartInfo(file, args, env) };
        process.Start();
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout ?? DefaultTimeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            ct.ThrowIfCancellationRequested();
            return new ProcessResult(-1, await stdout, await stderr);
        }

        return new ProcessResult(process.ExitCode, await stdout, await stderr);
    }
}
