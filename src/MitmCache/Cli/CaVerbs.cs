using CommandLine;

namespace MitmCache.Cli;

[Verb("init", HelpText = "Create the root CA in the data directory (refuses to replace one unless --force).")]
internal sealed class CaInitVerb
{
    [Option("data", HelpText = "Data directory. Default ./mitmcache-data (env MITMCACHE_DATA).")]
    public string? Data { get; set; }

    [Option("permit", Separator = ',', HelpText = "Restrict the CA with X.509 name constraints to this domain and its subdomains. Repeatable.")]
    public IEnumerable<string> Permit { get; set; } = [];

    [Option("force", HelpText = "Replace an existing CA. Every node must then trust the new one.")]
    public bool Force { get; set; }
}

[Verb("export", HelpText = "Print the root CA certificate (PEM) to stdout.")]
internal sealed class CaExportVerb
{
    [Option("data", HelpText = "Data directory. Default ./mitmcache-data (env MITMCACHE_DATA).")]
    public string? Data { get; set; }
}
