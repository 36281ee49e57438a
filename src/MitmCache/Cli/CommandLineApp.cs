using System.Reflection;
using CommandLine;
using MitmCache.Configuration;

namespace MitmCache.Cli;

/// <summary>
/// The verbs: <c>run</c> (the default), <c>prefetch</c>, <c>ca init|export</c>, <c>cache stats|ls|prune|verify</c>,
/// <c>auth revoke</c>, <c>help</c>, <c>version</c>. An unknown word is an error, never a proxy started on it.
/// Exit codes: 0 ok (help and version too), 1 runtime failure, 2 bad usage or invalid configuration.
/// </summary>
internal static class CommandLineApp
{
    private const string Usage = """
        Usage: mitmcache [COMMAND] [OPTIONS]

          run                            run the proxy (the default when the first word is an option)
          prefetch IMAGE...              pull images through the running proxy to warm its cache
          cache stats|ls|prune|verify    inspect and maintain the cache
          ca init|export                 create the root CA, or print it
          auth revoke                    drop the grants of private images
          help [COMMAND]                 this text, or a command's options; `help options --markdown`: the options table
          version                        the version

        `mitmcache COMMAND --help` lists a command's options.

        """;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length == 0 || (args[0].StartsWith('-') && args[0] is not ("--help" or "-h" or "--version")))
        {
            return await RunVerb.RunAsync(args);
        }

        var rest = args[1..];
        switch (args[0])
        {
            case "run":
                return await RunVerb.RunAsync(rest);
            case "prefetch":
                return ParseVerbs(args, typeof(PrefetchVerb)) is { } prefetch
                    ? await prefetch.MapResult((PrefetchVerb verb) => PrefetchCommand.RunAsync(verb), e => Task.FromResult(ExitCode(e)))
                    : 2;
            case "cache":
                return ParseVerbs(rest, typeof(CacheStatsVerb), typeof(CacheLsVerb), typeof(CachePruneVerb), typeof(CacheVerifyVerb)) is { } cache
                    ? await cache.MapResult(
                        (CacheStatsVerb verb) => CacheCommands.StatsAsync(verb),
                        (CacheLsVerb verb) => CacheCommands.ListAsync(verb),
                        (CachePruneVerb verb) => CacheCommands.PruneAsync(verb),
                        (CacheVerifyVerb verb) => CacheCommands.VerifyAsync(verb),
                        e => Task.FromResult(ExitCode(e)))
                    : 2;
            case "ca":
                return ParseVerbs(rest, typeof(CaInitVerb), typeof(CaExportVerb)) is { } ca
                    ? ca.MapResult((CaInitVerb verb) => CaCommands.Init(verb), (CaExportVerb verb) => CaCommands.Export(verb), ExitCode)
                    : 2;
            case "auth":
                return ParseVerbs(rest, typeof(AuthRevokeVerb)) is { } auth
                    ? await auth.MapResult((AuthRevokeVerb verb) => CacheCommands.RevokeAsync(verb), e => Task.FromResult(ExitCode(e)))
                    : 2;
            case "help" or "--help" or "-h":
                return await HelpAsync(rest);
            case "version" or "--version":
                Console.Out.WriteLine($"mitmcache {typeof(CommandLineApp).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion}");
                return 0;
            default:
                var near = new[] { "run", "prefetch", "cache", "ca", "auth", "help", "version" }
                    .Where(v => OptionLayers.Distance(v, args[0]) <= 2).OrderBy(v => OptionLayers.Distance(v, args[0])).FirstOrDefault();
                Console.Error.Write($"mitmcache: unknown command '{args[0]}'{(near is null ? "" : $"; did you mean '{near}'?")}\n\n{Usage}");
                return 2;
        }
    }

    /// <summary><c>help</c>, <c>help COMMAND</c>, <c>help options [--markdown]</c>.</summary>
    private static async Task<int> HelpAsync(string[] args)
    {
        switch (args)
        {
            case []:
                Console.Out.Write(Usage);
                return 0;
            case ["options", "--markdown"]:
                Console.Out.Write(OptionDocs.Markdown(ProxyOptions.All));
                return 0;
            case ["options"] or ["run"]:
                Console.Out.Write(OptionDocs.Help(ProxyOptions.All));
                return 0;
            case [var command] when command is not ("help" or "version"):
                return await RunAsync([command, "--help"]);
            default:
                Console.Error.Write($"mitmcache: help: unknown topic '{string.Join(' ', args)}'\n\n{Usage}");
                return 2;
        }
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

    /// <summary>The data directory named by <c>--data</c> or <c>MITMCACHE_DATA</c>, or null when neither names one.</summary>
    internal static string? NamedDataDirectory(string? flag) =>
        (flag ?? Environment.GetEnvironmentVariable(ProxyOptions.Data.EnvironmentVariable)) is { } named ? Path.GetFullPath(named) : null;

    /// <summary>The data directory named, or the default one.</summary>
    internal static DataLayout DataDirectory(string? flag) => new(NamedDataDirectory(flag) ?? ProxyOptions.Data.Default);

    /// <summary>
    /// The verbs parsed by CommandLineParser, or null when an option other than a list is given twice (reported
    /// here, naming it: CommandLineParser would keep the last silently). A list option (<c>--permit a --permit b</c>) repeats.
    /// </summary>
    private static ParserResult<object>? ParseVerbs(string[] args, params Type[] verbs)
    {
        var verb = verbs.FirstOrDefault(v => v.GetCustomAttribute<VerbAttribute>()?.Name == args.FirstOrDefault());
        var repeated = (verb?.GetProperties() ?? [])
            .Where(p => p.PropertyType == typeof(string) || p.PropertyType.IsValueType)
            .Select(p => p.GetCustomAttribute<OptionAttribute>()?.LongName)
            .Where(name => name is not null && args.Count(a => a == $"--{name}" || a.StartsWith($"--{name}=", StringComparison.Ordinal)) > 1)
            .ToList();
        foreach (var name in repeated)
        {
            Console.Error.WriteLine($"mitmcache: --{name} is given more than once; give it once");
        }

        if (repeated.Count > 0)
        {
            return null;
        }

        using var parser = new Parser(settings =>
        {
            settings.HelpWriter = Console.Error;
            settings.CaseInsensitiveEnumValues = true;
            settings.AllowMultiInstance = true;
        });
        return parser.ParseArguments(args, verbs);
    }

    /// <summary>Asking for help or the version is a success; anything else the parser refused is bad usage.</summary>
    private static int ExitCode(IEnumerable<Error> errors) =>
        errors.All(e => e.Tag is ErrorType.HelpRequestedError or ErrorType.HelpVerbRequestedError or ErrorType.VersionRequestedError) ? 0 : 2;
}
