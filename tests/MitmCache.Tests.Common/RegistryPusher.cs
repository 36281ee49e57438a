using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;

namespace MitmCache.Tests.Common;

/// <summary>
/// Pushes built images over the registry HTTP API: monolithic blob uploads (POST, then PUT
/// with ?digest=), blobs the registry already has are skipped, manifests are PUT last.
/// Answers a Bearer challenge by fetching a pull,push token as the given user.
/// </summary>
public sealed class RegistryPusher
{
    private readonly HttpClient _http;
    private readonly Uri _baseUri;
    private readonly string? _user;
    private readonly string? _password;
    private readonly ConcurrentDictionary<string, string> _tokens = new(StringComparer.Ordinal);

    /// <param name="http">A client that reaches the registry and its token realm, e.g. <see cref="RegistryServer.CreateClient"/>.</param>
    /// <param name="authority">"registry.test:PORT".</param>
    public RegistryPusher(HttpClient http, string authority,
        string? user = TokenServer.AdminUser, string? password = TokenServer.DefaultAdminPassword)
    {
        _http = http;
        _baseUri = new Uri($"https://{authority}/");
        _user = user;
        _password = password;
    }

    public async Task PushAsync(string repository, string tag, BuiltImage image, CancellationToken ct)
    {
        await PushBlobsAsync(repository, image, ct);
        await PutManifestAsync(repository, tag, image.Manifest, image.MediaType, ct);
    }

    /// <summary>Pushes each platform image by digest, then the index by tag.</summary>
    public async Task PushIndexAsync(string repository, string tag, BuiltIndex index,
        IReadOnlyList<BuiltImage> platforms, CancellationToken ct)
    {
        foreach (var image in platforms)
        {
            await PushBlobsAsync(repository, image, ct);
            await PutManifestAsync(repository, image.ManifestDigest, image.Manifest, image.MediaType, ct);
        }

        await PutManifestAsync(repository, tag, index.Bytes, index.MediaType, ct);
    }

    private async Task PushBlobsAsync(string repository, BuiltImage image, CancellationToken ct)
    {
        foreach (var (digest, bytes) in image.Blobs)
        {
            await PushBlobAsync(repository, digest, bytes, ct);
        }
    }

    private async Task PushBlobAsync(string repository, string digest, byte[] bytes, CancellationToken ct)
    {
        using (var head = await SendAsync(repository, () => new HttpRequestMessage(HttpMethod.Head, Url($"/v2/{repository}/blobs/{digest}")), ct))
        {
            // With the redirect middleware the registry answers HEAD with 307 too.
            if (head.StatusCode is HttpStatusCode.OK or HttpStatusCode.TemporaryRedirect)
            {
                return;
            }
        }

        Uri location;
        using (var start = await SendAsync(repository, () => new HttpRequestMessage(HttpMethod.Post, Url($"/v2/{repository}/blobs/uploads/")), ct))
        {
            await EnsureAsync(start, HttpStatusCode.Accepted, ct);
            location = new Uri(_baseUri, start.Headers.Location ?? throw new InvalidOperationException("Upload start without Location."));
        }

        var separator = string.IsNullOrEmpty(location.Query) ? "?" : "&";
        var target = new Uri(location + separator + "digest=" + Uri.EscapeDataString(digest));
        using var put = await SendAsync(repository, () => new HttpRequestMessage(HttpMethod.Put, target)
        {
            Content = Body(bytes, "application/octet-stream"),
        }, ct);
        await EnsureAsync(put, HttpStatusCode.Created, ct);
    }

    private async Task PutManifestAsync(string repository, string reference, byte[] manifest, string mediaType, CancellationToken ct)
    {
        using var response = await SendAsync(repository, () => new HttpRequestMessage(HttpMethod.Put, Url($"/v2/{repository}/manifests/{reference}"))
        {
            Content = Body(manifest, mediaType),
        }, ct);
        await EnsureAsync(response, HttpStatusCode.Created, ct);
    }

    /// <summary>Sends with the repository's token, and on a Bearer challenge fetches one and sends again.</summary>
    public async Task<HttpResponseMessage> SendAsync(string repository, Func<HttpRequestMessage> create, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            using var request = create();
            if (_tokens.TryGetValue(repository, out var token))
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }

            var response = await _http.SendAsync(request, ct);
            if (response.StatusCode != HttpStatusCode.Unauthorized || attempt > 1
                || BearerChallenge.FromResponse(response) is not { } challenge)
            {
                return response;
            }

            response.Dispose();
            _tokens[repository] = await challenge.FetchTokenAsync(_http, $"repository:{repository}:pull,push", _user, _password, ct);
        }
    }

    private Uri Url(string path) => new(_baseUri, path);

    private static ByteArrayContent Body(byte[] bytes, string mediaType)
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        return content;
    }

    private static async Task EnsureAsync(HttpResponseMessage response, HttpStatusCode expected, CancellationToken ct)
    {
        if (response.StatusCode != expected)
        {
            var body = await response.Content.ReadAsStringAsync(ct);
            throw new InvalidOperationException(
                $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri} gave {(int)response.StatusCode}, expected {(int)expected}: {body}");
        }
    }
}
