using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using MitmCache.Registry;
using MitmCache.Upstream;

namespace MitmCache.Prefetch;

/// <summary>
/// The pull side of the distribution protocol, spoken through the proxy like any HTTPS_PROXY client:
/// <c>GET /v2/</c> once per registry (which also lets the proxy remember the challenge for offline use),
/// then the token dance for <c>repository:NAME:pull</c> (distribution docs/spec/auth/token.md) with
/// optional Basic credentials, and one retry with a fresh token on a 401.
/// TLS trusts the proxy's root, and also the system roots so that a token host the proxy merely tunnels
/// still works; <see cref="IsIntercepted"/> tells which hosts really came through the cache.
/// </summary>
internal sealed class RegistryClient : IDisposable
{
    private static readonly TimeSpan s_headTimeout = TimeSpan.FromSeconds(60);

    private readonly HttpClient _http;
    private readonly string? _basic;
    private readonly ConcurrentDictionary<string, Lazy<Task<Challenge>>> _challenges = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<(string Registry, string Repository), string?> _authorizations = new();
    private readonly ConcurrentDictionary<string, bool> _intercepted = new(StringComparer.OrdinalIgnoreCase);

    /// <param name="credentials"><c>user:password</c> for the registry's token server (or Basic auth), or null.</param>
    public RegistryClient(Uri proxy, X509Certificate2 proxyRoot, string? credentials)
    {
        _basic = credentials is null ? null : "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(credentials));
        var webProxy = new WebProxy(new UriBuilder(proxy) { UserName = "", Password = "" }.Uri);
        if (proxy.UserInfo.Length > 0)
        {
            var colon = proxy.UserInfo.IndexOf(':', StringComparison.Ordinal);
            webProxy.Credentials = colon < 0
                ? new NetworkCredential(Uri.UnescapeDataString(proxy.UserInfo), "")
                : new NetworkCredential(Uri.UnescapeDataString(proxy.UserInfo[..colon]), Uri.UnescapeDataString(proxy.UserInfo[(colon + 1)..]));
        }

        var handler = new SocketsHttpHandler
        {
            Proxy = webProxy,
            UseProxy = true,
            AllowAutoRedirect = true,
            MaxAutomaticRedirections = 5,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (sender, certificate, _, errors) => Validate(sender as SslStream, certificate, errors, proxyRoot),
            },
        };
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("mitmcache-prefetch", "1"));
    }

    /// <summary>True when the host's certificate came from the proxy's CA, so its traffic goes through the cache.</summary>
    public bool IsIntercepted(string registry) =>
        _intercepted.TryGetValue(registry.Split(':')[0], out var intercepted) && intercepted;

    /// <summary>GET (or HEAD) <paramref name="path"/> on the image's registry, authorized for pulling its repository.</summary>
    /// <exception cref="PrefetchException">The registry or its token server refused, or answered nonsense.</exception>
    public async Task<HttpResponseMessage> SendAsync(ImageReference image, string path, string? accept, CancellationToken cancellationToken)
    {
        var key = (image.Registry, image.Repository);
        if (!_authorizations.TryGetValue(key, out var authorization))
        {
            var ping = _challenges.GetOrAdd(image.Registry, r => new Lazy<Task<Challenge>>(() => PingAsync(r, cancellationToken)));
            Challenge challenge;
            try
            {
                challenge = await ping.Value;
            }
            catch (PrefetchException)
            {
                _challenges.TryRemove(new KeyValuePair<string, Lazy<Task<Challenge>>>(image.Registry, ping)); // the next image tries again
                throw;
            }

            authorization = await AuthorizeAsync(challenge, image.Repository, cancellationToken);
            _authorizations[key] = authorization;
        }

        var response = await SendOnceAsync(image.Registry, path, accept, authorization, cancellationToken);
        if (response.StatusCode != HttpStatusCode.Unauthorized)
        {
            return response;
        }

        // Expired token, or a scope the first token lacked: ask again with the challenge of this answer.
        var retry = ChallengeOf(response);
        response.Dispose();
        authorization = await AuthorizeAsync(retry, image.Repository, cancellationToken);
        _authorizations[key] = authorization;
        response = await SendOnceAsync(image.Registry, path, accept, authorization, cancellationToken);
        if (response.StatusCode == HttpStatusCode.Unauthorized)
        {
            response.Dispose();
            throw new PrefetchException(_basic is null
                ? $"{image.Registry} wants credentials for {image.Repository} (give --creds USER:PASSWORD)"
                : $"{image.Registry} refused the credentials for {image.Repository}");
        }

        return response;
    }

    private async Task<HttpResponseMessage> SendOnceAsync(string registry, string path, string? accept, string? authorization, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"https://{registry}{path}"));
        if (accept is not null)
        {
            request.Headers.TryAddWithoutValidation("Accept", accept);
        }

        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(s_headTimeout);
        try
        {
            return await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        }
        catch (HttpRequestException ex) when (ex.InnerException is AuthenticationException)
        {
            throw new PrefetchException($"TLS with {registry} through the proxy failed: its certificate is neither from the proxy's CA nor publicly trusted");
        }
        catch (HttpRequestException ex)
        {
            throw new PrefetchException($"{registry}: {ex.Message}");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new PrefetchException($"{registry}: no answer within {s_headTimeout.TotalSeconds:0} s");
        }
    }

    /// <summary><c>GET /v2/</c>: open (200), or the challenge to answer (401).</summary>
    private async Task<Challenge> PingAsync(string registry, CancellationToken cancellationToken)
    {
        using var response = await SendOnceAsync(registry, "/v2/", accept: null, authorization: null, cancellationToken);
        return response.StatusCode switch
        {
            HttpStatusCode.OK => new Challenge(null, Basic: false),
            HttpStatusCode.Unauthorized => ChallengeOf(response),
            var status => throw new PrefetchException($"{registry}/v2/ answered {(int)status} {response.ReasonPhrase}: is it a registry?"),
        };
    }

    private static Challenge ChallengeOf(HttpResponseMessage response)
    {
        var header = string.Join(", ", response.Headers.WwwAuthenticate.Select(h => h.ToString()));
        return WwwAuthenticate.TryParseBearer(header, out var bearer)
            ? new Challenge(bearer, Basic: false)
            : new Challenge(null, Basic: header.StartsWith("Basic", StringComparison.OrdinalIgnoreCase));
    }

    private async Task<string?> AuthorizeAsync(Challenge challenge, string repository, CancellationToken cancellationToken)
    {
        if (challenge.Bearer is not { } bearer)
        {
            return challenge.Basic ? _basic : null;
        }

        var scope = $"repository:{repository}:pull";
        var query = new StringBuilder(bearer.Realm.Query.Length > 1 ? bearer.Realm.Query[1..] + "&" : "");
        if (bearer.Service is { } service)
        {
            query.Append("service=").Append(Uri.EscapeDataString(service)).Append('&');
        }

        query.Append("scope=").Append(Uri.EscapeDataString(scope));
        var uri = new UriBuilder(bearer.Realm) { Query = query.ToString() }.Uri;
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        if (_basic is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", _basic);
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(s_headTimeout);
        try
        {
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            {
                throw new PrefetchException($"the token server {uri.Authority} refused {(_basic is null ? "anonymous access" : "the credentials")} for {scope}");
            }

            if (!response.IsSuccessStatusCode)
            {
                throw new PrefetchException($"the token server {uri.Authority} answered {(int)response.StatusCode} {response.ReasonPhrase}");
            }

            var body = await BoundedContent.ReadAsync(response.Content, BoundedContent.MaxTokenBytes, timeout.Token)
                ?? throw new PrefetchException($"the token server {uri.Authority} sent an answer larger than {BoundedContent.Describe(BoundedContent.MaxTokenBytes)}");
            using var document = JsonDocument.Parse(body);
            foreach (var name in new[] { "token", "access_token" })
            {
                if (document.RootElement.TryGetProperty(name, out var token) && token.ValueKind == JsonValueKind.String && token.GetString() is { Length: > 0 } value)
                {
                    return "Bearer " + value;
                }
            }

            throw new PrefetchException($"the token server {uri.Authority} sent no token");
        }
        catch (HttpRequestException ex)
        {
            throw new PrefetchException($"token server {uri.Authority}: {ex.Message}");
        }
        catch (JsonException)
        {
            throw new PrefetchException($"the token server {uri.Authority} sent something that is not JSON");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new PrefetchException($"token server {uri.Authority}: no answer within {s_headTimeout.TotalSeconds:0} s");
        }
    }

    private bool Validate(SslStream? stream, X509Certificate? certificate, SslPolicyErrors errors, X509Certificate2 proxyRoot)
    {
        if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
        {
            return false;
        }

        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(proxyRoot);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        var fromProxy = chain.Build(leaf);
        if (stream?.TargetHostName is { Length: > 0 } host)
        {
            _intercepted[host] = fromProxy;
        }

        return fromProxy || errors == SslPolicyErrors.None;
    }

    public void Dispose() => _http.Dispose();

    /// <summary>What <c>/v2/</c> asked for: a Bearer token, Basic credentials, or nothing.</summary>
    private sealed record Challenge(BearerChallenge? Bearer, bool Basic);
}
