using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MitmCache.Prefetch;

namespace MitmCache.Cli;

/// <summary>
/// <c>mitmcache prefetch</c>: pulls images through the running proxy (the registry protocol, done here with
/// an HttpClient whose proxy is the MitmCache port) so that the proxy caches every manifest and blob.
/// Exit codes: 0 every image done, 1 any image failed, 2 usage.
/// </summary>
internal static class PrefetchCommand
{
    public static async Task<int> RunAsync(PrefetchVerb verb)
    {
        var errors = new List<string>();
        var images = ReadImages(verb, errors);
        if (!PlatformFilter.TryParse(verb.Platform, out var platforms, out var platformError))
        {
            errors.Add($"--platform: {platformError}");
        }

        var proxyText = verb.Proxy ?? Environment.GetEnvironmentVariable("MITMCACHE_PROXY") ?? CacheCommands.DefaultProxy;
        if (!Uri.TryCreate(proxyText, UriKind.Absolute, out var proxy) || proxy.Scheme != Uri.UriSchemeHttp)
        {
            errors.Add($"--proxy: '{proxyText}' is not an http:// URL");
        }

        var credentials = verb.Creds ?? Environment.GetEnvironmentVariable("MITMCACHE_PREFETCH_CREDS");
        if (credentials is not null && credentials.IndexOf(':', StringComparison.Ordinal) <= 0)
        {
            errors.Add("--creds: expected USER:PASSWORD");
        }

        if (verb.Jobs is < 1 or > 64)
        {
            errors.Add("--jobs: between 1 and 64");
        }

        if (verb.Progress is not ("auto" or "tty" or "plain"))
        {
            errors.Add("--progress: auto, tty or plain");
        }

        if (images.Count == 0 && errors.Count == 0)
        {
            errors.Add("no images: give IMAGE arguments or --file");
        }

        if (errors.Count > 0)
        {
            errors.ForEach(e => Console.Error.WriteLine($"mitmcache: {e}"));
            return 2;
        }

        using var cancel = CommandLineApp.CancelOnCtrlC();
        X509Certificate2 root;
        try
        {
            root = await LoadRootAsync(verb.CaFile, proxy!, cancel.Token);
        }
        catch (CliException ex)
        {
            Console.Error.WriteLine($"mitmcache: {ex.Message}");
            return 1;
        }

        using (root)
        using (var client = new RegistryClient(proxy!, root, credentials))
        {
            var terminal = verb.Progress == "tty" || (verb.Progress == "auto" && !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("TERM") != "dumb");
            IPrefetchProgress progress = terminal ? new TerminalProgress(Console.Out) : new PlainProgress(Console.Out);
            var prefetcher = new ImagePrefetcher(client, platforms, verb.Jobs, progress);
            var failed = new List<PrefetchResult>();
            try
            {
                foreach (var image in images)
                {
                    var result = await prefetcher.PrefetchAsync(image, cancel.Token);
                    if (!result.Succeeded)
                    {
                        failed.Add(result);
                    }
                }
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                Console.Error.WriteLine("mitmcache: interrupted");
                return 130;
            }

            if (failed.Count > 0)
            {
                Console.Error.WriteLine($"mitmcache: {failed.Count} of {images.Count} images failed:");
                failed.ForEach(f => Console.Error.WriteLine($"  {f.Image}: {f.Error}"));
                return 1;
            }

            return 0;
        }
    }

    /// <summary>IMAGE arguments, then the lines of --file (blank lines and # comments skipped).</summary>
    private static List<ImageReference> ReadImages(PrefetchVerb verb, List<string> errors)
    {
        var texts = verb.Images.Select(i => (Text: i, Where: "argument")).ToList();
        if (verb.File is { } file)
        {
            try
            {
                var lines = file == "-" ? Console.In.ReadToEnd().Split('\n') : File.ReadAllLines(file);
                for (var i = 0; i < lines.Length; i++)
                {
                    var line = lines[i];
                    var hash = line.IndexOf('#', StringComparison.Ordinal);
                    line = (hash < 0 ? line : line[..hash]).Trim();
                    if (line.Length > 0)
                    {
                        texts.Add((line, $"{file}:{i + 1}"));
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                errors.Add($"--file: {ex.Message}");
            }
        }

        var images = new List<ImageReference>();
        foreach (var (text, where) in texts)
        {
            if (ImageReference.TryParse(text, out var image, out var error))
            {
                images.Add(image);
            }
            else
            {
                errors.Add($"{where}: {error}");
            }
        }

        return [.. images.Distinct()];
    }

    /// <summary>The root the proxy mints leaves with: <c>--ca-file</c>, else the proxy's own <c>/ca.crt</c>.</summary>
    private static async Task<X509Certificate2> LoadRootAsync(string? file, Uri proxy, CancellationToken cancellationToken)
    {
        string pem;
        if (file is not null)
        {
            try
            {
                pem = await File.ReadAllTextAsync(file, cancellationToken);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new CliException($"--ca-file: {ex.Message}");
            }
        }
        else
        {
            // The proxy we are about to route through can read this traffic anyway: trusting what it
            // says its root is adds nothing it could not already do.
            var caUrl = new UriBuilder(proxy) { UserName = "", Password = "", Path = "/ca.crt" }.Uri;
            using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(10), MaxResponseContentBufferSize = 1 << 20 };
            try
            {
                pem = await http.GetStringAsync(caUrl, cancellationToken);
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                throw new CliException($"cannot get the proxy's root CA from {caUrl} ({ex.Message}): is the proxy running? (or give --ca-file)");
            }
        }

        try
        {
            return X509Certificate2.CreateFromPem(pem);
        }
        catch (CryptographicException ex)
        {
            throw new CliException($"the proxy's root CA is not a PEM certificate: {ex.Message}");
        }
    }
}
