using System.Collections;
using CommandLine;
using MitmCache.Certificates;
using MitmCache.Configuration;
using MitmCache.Diagnostics;
using MitmCache.Hosting;

namespace MitmCache.Cli;

/// <summary>
/// The verbs: <c>run</c>, <c>prefetch</c>, <c>ca init|export</c>, <c>cache stats|ls|prune|verify</c>, <c>auth revoke</c>.
/// Exit codes: 0 ok, 1 runtime failure, 2 bad usage or invalid configuration.
/// </summary>
internal static class CommandLineApp
{
    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length > 0 && args[0] == "ca")
        {
            return Parse(args[1..]).ParseArguments<CaInitVerb, CaExportVerb>(args[1..]).MapResult(
                (CaInitVerb verb) => CaInit(verb),
                (CaExportVerb verb) => CaExport(verb),
                _ => 2);
        }

        if (args.Length > 0 && args[0] == "auth")
        {
            return await Parse(args[1..]).ParseArguments<AuthRevokeVerb>(args[1..]).MapResult(AuthRevokeAsync, _ => Task.FromResult(2));
        }

        if (args.Length > 0 && args[0] == "cache")
        {
            return await Parse(args[1..]).ParseArguments<CacheStatsVerb, CacheLsVerb, CachePruneVerb, CacheVerifyVerb>(args[1..]).MapResult(
                (CacheStatsVerb verb) => CacheCommands.StatsAsync(verb),
                (CacheLsVerb verb) => CacheCommands.ListAsync(verb),
                (CachePruneVerb verb) => CacheCommands.PruneAsync(verb),
                (CacheVerifyVerb verb) => CacheCommands.VerifyAsync(verb),
                _ => Task.FromResult(2));
        }

        // ca, cache and auth are listed here for the top-level help; they were dispatched above.
        var result = Parse(args).ParseArguments<RunVerb, PrefetchVerb, CacheGroupVerb, CaGroupVerb, AuthGroupVerb>(args);
        return await result.MapResult(
            (RunVerb verb) => RunProxyAsync(verb),
            (PrefetchVerb verb) => PrefetchCommand.RunAsync(verb),
            _ => Task.FromResult(2));
    }

    /// <summary>Cancelled by the first Ctrl-C, so the command can stop cleanly; a second one (or one after dispose) terminates.</summary>
    internal static CancellationTokenSource CancelOnCtrlC()
    {
        var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            if (cancel.IsCancellationRequested)
            {
                return;
            }

            try
            {
                cancel.Cancel();
                e.Cancel = true;
            }
            catch (ObjectDisposedException)
            {
            }
        };
        return cancel;
    }

    private static Parser Parse(string[] _) => new(settings =>
    {
        settings.HelpWriter = Console.Error;
        settings.CaseInsensitiveEnumValues = true;
        settings.AllowMultiInstance = true;
    });

    private static async Task<int> RunProxyAsync(RunVerb verb)
    {
        var errors = new List<string>();
        var settings = LoadSettings(verb, Environment.GetEnvironmentVariables(), errors);
        if (settings is null)
        {
            foreach (var error in errors)
            {
                Console.Error.WriteLine($"mitmcache: {error}");
            }

            return 2;
        }

        using var log = Logging.Create(settings);
        try
        {
            await using var host = await ProxyHost.StartAsync(settings, log);
            await host.WaitForShutdownAsync();
            return 0;
        }
        catch (CertificateAuthorityException ex)
        {
            Console.Error.WriteLine($"mitmcache: {ex.Message}");
            return 1;
        }
        catch (Exception ex) when (ex is Caching.CacheUnavailableException or Caching.CacheLockedException)
        {
            Console.Error.WriteLine($"mitmcache: {ex.Message}");
            return 1;
        }
        catch (IOException ex) when (ex.InnerException is System.Net.Sockets.SocketException || ex.Message.Contains("address", StringComparison.OrdinalIgnoreCase))
        {
            Console.Error.WriteLine($"mitmcache: cannot listen on {settings.Listen}: {ex.Message}");
            return 1;
        }
    }

    /// <summary>File, then environment, then flags; then validation of the merged result.</summary>
    internal static ProxySettings? LoadSettings(RunVerb verb, IDictionary environment, List<string> errors)
    {
        var options = new ProxyOptions();
        var configFile = verb.Config ?? environment["MITMCACHE_CONFIG"] as string;
        if (configFile is not null)
        {
            OptionLayers.ApplyFile(options, configFile, errors);
        }

        OptionLayers.ApplyEnvironment(options, environment, errors);
        OptionLayers.ApplyFlags(options, verb);
        var settings = SettingsValidator.Validate(options, errors);
        return errors.Count == 0 ? settings : null;
    }

    internal static string DataDirectory(string? flag) =>
        Path.GetFullPath(flag ?? Environment.GetEnvironmentVariable("MITMCACHE_DATA") ?? new ProxyOptions().Data!);

    private static int CaInit(CaInitVerb verb)
    {
        var directory = Path.Combine(DataDirectory(verb.Data), "ca");
        if (!verb.Force && File.Exists(Path.Combine(directory, CertificateAuthority.KeyFileName)))
        {
            Console.Error.WriteLine($"mitmcache: a CA already exists in {directory}; use --force to replace it (every node must then trust the new one)");
            return 1;
        }

        try
        {
            using var authority = CertificateAuthority.Create(verb.Permit.ToList(), TimeProvider.System);
            authority.Save(directory);
            Console.Error.WriteLine($"Created root CA in {directory}");
            Console.Error.WriteLine($"SHA-256 fingerprint: {authority.Sha256Fingerprint}");
            return 0;
        }
        catch (Exception ex) when (ex is ArgumentException or CertificateAuthorityException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"mitmcache: {ex.Message}");
            return 1;
        }
    }

    /// <summary>Through the running proxy's loopback admin endpoint, else directly in the stopped proxy's index.</summary>
    private static async Task<int> AuthRevokeAsync(AuthRevokeVerb verb)
    {
        var proxy = verb.Proxy ?? Environment.GetEnvironmentVariable("MITMCACHE_PROXY") ?? "http://127.0.0.1:3128";
        var query = $"registry={Uri.EscapeDataString(verb.Registry)}" + (verb.Repository is null ? "" : $"&repository={Uri.EscapeDataString(verb.Repository)}");
        using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10), MaxResponseContentBufferSize = 1 << 20 })
        {
            try
            {
                using var response = await http.PostAsync($"{proxy.TrimEnd('/')}/admin/auth/revoke?{query}", content: null);
                var text = await response.Content.ReadAsStringAsync();
                Console.WriteLine(response.IsSuccessStatusCode ? $"revoked via {proxy}: {text}" : $"mitmcache: {proxy} answered {(int)response.StatusCode}: {text}");
                return response.IsSuccessStatusCode ? 0 : 1;
            }
            catch (HttpRequestException)
            {
                // No proxy running: the index is ours to open.
            }
        }

        var index = Path.Combine(DataDirectory(verb.Data), "index.db");
        if (!File.Exists(index))
        {
            Console.Error.WriteLine($"mitmcache: no proxy at {proxy} and no index at {index}");
            return 1;
        }

        try
        {
            using var cacheIndex = new Caching.CacheIndex(index);
            var revoked = cacheIndex.DeleteGrants(verb.Registry, verb.Repository);
            Console.WriteLine($"revoked in {index}: {{\"revoked\":{revoked}}}");
            return 0;
        }
        catch (Caching.CacheLockedException ex)
        {
            Console.Error.WriteLine($"mitmcache: {ex.Message}; give that proxy's address with --proxy");
            return 1;
        }
    }

    private static int CaExport(CaExportVerb verb)
    {
        var directory = Path.Combine(DataDirectory(verb.Data), "ca");
        try
        {
            using var authority = CertificateAuthority.Load(directory);
            Console.Out.Write(authority.ExportPem());
            return 0;
        }
        catch (CertificateAuthorityException ex)
        {
            Console.Error.WriteLine($"mitmcache: {ex.Message}");
            return 1;
        }
    }
}
