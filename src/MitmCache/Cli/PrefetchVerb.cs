using CommandLine;

namespace MitmCache.Cli;

[Verb("prefetch", HelpText = "Pull images through the running proxy so that it caches them (warm-up, pre-loading).")]
internal sealed class PrefetchVerb
{
    [Value(0, MetaName = "IMAGE", HelpText = "Images: nginx:1.27, ghcr.io/org/app:v2, quay.io/x/y@sha256:... (Docker Hub short names work).")]
    public IEnumerable<string> Images { get; set; } = [];

    [Option("file", HelpText = "Also read images from this file, one per line; # starts a comment; - reads stdin.")]
    public string? File { get; set; }

    [Option("platform", HelpText = "For multi-platform images: 'all', or os/arch[/variant],... Default: this host's platform (linux/amd64 on x86-64).")]
    public string? Platform { get; set; }

    [Option("creds", HelpText = "USER:PASSWORD for the registries' token servers (prefer env MITMCACHE_PREFETCH_CREDS: flags show in ps).")]
    public string? Creds { get; set; }

    [Option("proxy", HelpText = "The proxy to pull through. Default http://127.0.0.1:3128 (env MITMCACHE_PROXY); http://USER:PASS@HOST:PORT with --proxy-auth.")]
    public string? Proxy { get; set; }

    [Option("ca-file", HelpText = "PEM root the proxy mints with. Default: fetched from the proxy's /ca.crt.")]
    public string? CaFile { get; set; }

    [Option("jobs", Default = 4, HelpText = "Blobs downloaded at the same time.")]
    public int Jobs { get; set; }

    [Option("progress", Default = "auto", HelpText = "auto (bars on a terminal, else plain lines), tty or plain.")]
    public string Progress { get; set; } = "auto";
}
