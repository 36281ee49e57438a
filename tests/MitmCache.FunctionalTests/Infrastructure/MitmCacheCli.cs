using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Infrastructure;

/// <summary>The built <c>mitmcache</c> executable as a user runs it: <c>dotnet mitmcache.dll VERB ...</c>.</summary>
public static class MitmCacheCli
{
    public static string EntryPoint => typeof(MitmCache.Cli.RunVerb).Assembly.Location;

    /// <summary>Runs one command to completion. MITMCACHE_* variables of the test's own environment are not passed on.</summary>
    public static Task<ProcessResult> RunAsync(params string[] args) => RunAsync(args, env: null);

    public static Task<ProcessResult> RunAsync(IEnumerable<string> args, IDictionary<string, string?>? env, TimeSpan? timeout = null)
    {
        var environment = new Dictionary<string, string?> { ["MITMCACHE_PROXY"] = null, ["MITMCACHE_DATA"] = null, ["MITMCACHE_PREFETCH_CREDS"] = null };
        foreach (var (name, value) in env ?? new Dictionary<string, string?>())
        {
            environment[name] = value;
        }

        return ProcessRunner.RunAsync("dotnet", [EntryPoint, .. args], environment, timeout);
    }
}
