using CommandLine;

namespace MitmCache.Cli;

[Verb("revoke", HelpText = "Drop every credential's grants for a registry (or one repository), so private images need upstream's yes again.")]
internal sealed class AuthRevokeVerb
{
    [Option("registry", Required = true, HelpText = "Registry as the proxy keys it: host, or host:port when not 443.")]
    public string Registry { get; set; } = "";

    [Option("repository", HelpText = "Only this repository.")]
    public string? Repository { get; set; }

    [Option("proxy", HelpText = "Running proxy to ask (default http://127.0.0.1:3128, env MITMCACHE_PROXY). When none answers, the data directory is changed directly.")]
    public string? Proxy { get; set; }

    [Option("data", HelpText = "The data directory whose grants to drop: through the proxy when it serves it, else opened directly. Default: the proxy's, or ./mitmcache-data (env MITMCACHE_DATA).")]
    public string? Data { get; set; }
}
