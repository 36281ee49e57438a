namespace MitmCache.Tests.Common;

/// <summary>Outcome of <see cref="ProcessRunner.RunAsync"/>. ExitCode is -1 when the process timed out and was killed.</summary>
public sealed record ProcessResult(int ExitCode, string StdOut, string StdErr)
{
    public bool Succeeded => ExitCode == 0;

    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{StdOut}\n--- stderr\n{StdErr}";
}
