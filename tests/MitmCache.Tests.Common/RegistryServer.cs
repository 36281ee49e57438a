using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace MitmCache.Tests.Common;

/// <summary>
/// The CNCF distribution registry (docker-registry 2.8) on https://registry.test:PORT (or another name),
/// with filesystem storage under a temp dir. Access log lines (Apache combined format on
/// stdout) are kept for <see cref="CountRequests"/>.
/// </summary>
public sealed partial class RegistryServer : IAsyncDisposable
{
    private const string Executable = "/usr/bin/docker-registry";

    private readonly TestPki _pki;
    private readonly string _configPath;
    private readonly RegistryOptions _options;
    private readonly ConcurrentQueue<(string Method, string Target, int Status)> _accessLog = new();
    private readonly ConcurrentQueue<string> _output = new();
    private BackgroundProcess? _process;

    private RegistryServer(TestPki pki, string dir, RegistryOptions options)
    {
        _pki = pki;
        _options = options;
        _configPath = Path.Combine(dir, "config.yml");
        StorageRoot = StorageRootIn(dir);
    }

    public int Port { get; private set; }

    /// <summary>Where it listens: 127.0.0.1, or the address of its <see cref="RegistryOptions.Network"/>.</summary>
    public IPAddress Address => _options.Network?.Address ?? IPAddress.Loopback;

    /// <summary>The name it answers to: <c>registry.test</c> unless <see cref="RegistryOptions.Host"/> says otherwise.</summary>
    public string Host => _options.Host;

    /// <summary>"registry.test:PORT" (or another <see cref="RegistryOptions.Host"/>), the image reference prefix.</summary>
    public string Authority => $"{_options.Host}:{Port}";

    public Uri BaseUri => new($"https://{Authority}/");

    /// <summary>The filesystem driver's root; blobs live under docker/registry/v2/blobs/sha256/XX/HEX/data.</summary>
    public string StorageRoot { get; }

    /// <summary>All output lines (stdout and stderr interleaved) of every run so far, for failure messages.</summary>
    public string Output => string.Join('\n', _output);

    /// <summary>The storage root a registry started with this <paramref name="dir"/> will use, so a CDN can serve it before the registry starts.</summary>
    public static string StorageRootIn(string dir) => Path.Combine(dir, "storage");

    public static async Task<RegistryServer> StartAsync(TestPki pki, string dir, RegistryOptions options, CancellationToken ct)
    {
        Directory.CreateDirectory(dir);
        var server = new RegistryServer(pki, dir, options);
        var (cert, key) = pki.IssueServer($"registry-{Guid.NewGuid():N}", options.Host);
        for (var attempt = 1; ; attempt++)
        {
            server.Port = FreePort.Get();
            await File.WriteAllTextAsync(server._configPath, server.BuildConfig(cert, key), ct);
            try
            {
                await server.LaunchAsync(ct);
                return server;
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                // Most likely someone took the port between FreePort.Get() and the bind.
                server.Kill();
            }
            catch
            {
                server.Kill();
                throw;
            }
        }
    }

    /// <summary>An HttpClient that reaches this registry, its token server and its redirect host directly.</summary>
    public HttpClient CreateClient(TimeSpan? timeout = null)
    {
        var map = new Dictionary<string, IPEndPoint>(StringComparer.OrdinalIgnoreCase) { [_options.Host] = new(Address, Port) };
        if (_options.Token is { } token)
        {
            map[Hosts.Auth] = new(IPAddress.Loopback, token.Port);
        }

        if (_options.RedirectBaseUrl is { } redirect)
        {
            var uri = new Uri(redirect);
            map[uri.Host] = new(IPAddress.Loopback, uri.Port);
        }

        return LoopbackHttp.CreateClient(map, _pki.CaCertificate, timeout);
    }

    /// <summary>
    /// Requests seen in the access log whose method matches and whose request target contains
    /// <paramref name="pathContains"/>. The registry writes the line after the response is sent,
    /// so a caller that just got its response may need <see cref="WaitForRequestsAsync"/>.
    /// </summary>
    public int CountRequests(string method, string pathContains) =>
        _accessLog.Count(e => string.Equals(e.Method, method, StringComparison.OrdinalIgnoreCase)
            && e.Target.Contains(pathContains, StringComparison.Ordinal));

    /// <summary>Waits until <see cref="CountRequests"/> reaches <paramref name="atLeast"/> or the timeout passes; returns the count.</summary>
    public async Task<int> WaitForRequestsAsync(string method, string pathContains, int atLeast,
        TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(2));
        int count;
        while ((count = CountRequests(method, pathContains)) < atLeast && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20, ct);
        }

        return count;
    }

    /// <summary>
    /// Sends a request of its own straight to the registry and waits for its access line. The registry
    /// writes a line when a request's handler returns, so a request answered before this call is in
    /// <see cref="AccessLog"/> when it returns: a count taken then is final for everything that came
    /// before (say, through a proxy whose work is done), where a pause would only make it likely.
    /// </summary>
    /// <exception cref="TimeoutException">The marker's line did not come within 10 seconds.</exception>
    public async Task SyncAccessLogAsync(CancellationToken ct = default)
    {
        var marker = $"/v2/mitmcache-test-marker/{Guid.NewGuid():N}";
        using (var http = CreateClient(TimeSpan.FromSeconds(10)))
        {
            using var response = await http.GetAsync(new Uri(BaseUri, marker), ct);
        }

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!_accessLog.Any(e => e.Target == marker))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"the registry did not log {marker}");
            }

            await Task.Delay(20, ct);
        }
    }

    /// <summary>Access log entries (method, request target, status) in arrival order.</summary>
    public IReadOnlyList<(string Method, string Target, int Status)> AccessLog => _accessLog.ToArray();

    public void ClearAccessLog() => _accessLog.Clear();

    /// <summary>SIGKILL and wait: connections are refused afterwards.</summary>
    public void Kill()
    {
        _process?.Dispose();
        _process = null;
    }

    /// <summary>Starts again with the same port, storage and configuration.</summary>
    public Task RestartAsync(CancellationToken ct = default)
    {
        Kill();
        return LaunchAsync(ct);
    }

    public ValueTask DisposeAsync()
    {
        Kill();
        return ValueTask.CompletedTask;
    }

    private async Task LaunchAsync(CancellationToken ct)
    {
        var (file, args) = _options.Network is { } network ? network.Wrap(Executable, ["serve", _configPath]) : (Executable, ["serve", _configPath]);
        var process = BackgroundProcess.Start(file, args, onLine: OnOutputLine);
        _process = process;

        using var http = CreateClient(TimeSpan.FromSeconds(2));
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"docker-registry did not come up on port {Port}.\n{process.DescribeOutput()}");
            }

            try
            {
                using var response = await http.GetAsync(new Uri(BaseUri, "/v2/"), ct);
                if (response.StatusCode is HttpStatusCode.OK or HttpStatusCode.Unauthorized)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
            }

            await Task.Delay(50, ct);
        }
    }

    private void OnOutputLine(string line)
    {
        _output.Enqueue(line);
        var match = AccessLine().Match(line);
        if (match.Success)
        {
            _accessLog.Enqueue((match.Groups["method"].Value, match.Groups["target"].Value, int.Parse(match.Groups["status"].Value, CultureInfo.InvariantCulture)));
        }
    }

    // 127.0.0.1 - - [28/Nov/2026:00:25:38 +0000] "GET /v2/ HTTP/2.0" 200 2 "" "curl/7.88.1"
    [GeneratedRegex("""^\S+ \S+ \S+ \[[^\]]+\] "(?<method>[A-Z]+) (?<target>\S+) HTTP/[0-9.]+" (?<status>\d{3}) """)]
    private static partial Regex AccessLine();

    private string BuildConfig(string certPath, string keyPath)
    {
        // JSON is valid YAML, but flow-style YAML reads closer to distribution's docs.
        var yaml = new StringBuilder();
        yaml.AppendLine("version: 0.1");
        yaml.AppendLine("log: {level: info, formatter: text, accesslog: {disabled: false}}");
        yaml.AppendLine($"storage: {{filesystem: {{rootdirectory: \"{StorageRoot}\"}}, delete: {{enabled: true}}}}");
        yaml.AppendLine($"http: {{addr: \"{Address}:{Port}\", secret: mitmcache-test-secret, tls: {{certificate: \"{certPath}\", key: \"{keyPath}\"}}}}");
        yaml.AppendLine("health: {storagedriver: {enabled: false}}");
        if (_options.Token is { } token)
        {
            yaml.AppendLine($"auth: {{token: {{realm: \"{token.Realm}\", service: \"{token.Service}\", issuer: \"{token.Issuer}\", rootcertbundle: \"{token.SigningCertPath}\"}}}}");
        }

        if (_options.RedirectBaseUrl is { } baseUrl)
        {
            yaml.AppendLine($"middleware: {{storage: [{{name: redirect, options: {{baseurl: \"{baseUrl}\"}}}}]}}");
        }

        return yaml.ToString();
    }
}
