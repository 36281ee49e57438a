namespace MitmCache.Tests.Common;

/// <summary>curl with a clean environment (no inherited proxy or CA variables).</summary>
public static class Curl
{
    public const string Executable = "/usr/bin/curl";

    public static Task<ProcessResult> RunAsync(params string[] args) => RunAsync(args, env: null, CancellationToken.None);

    public static Task<ProcessResult> RunAsync(IEnumerable<string> args, IDictionary<string, string?>? env, CancellationToken ct) =>
        ProcessRunner.RunAsync(Executable, args, env, ct: ct);
}
