using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Infrastructure;

/// <summary>
/// A registry client that does the token dance by hand through the proxy, so tests see exact
/// statuses and bodies: GET → 401 challenge → token (anonymous or Basic) → GET with Bearer.
/// </summary>
public static class RegistryCalls
{
    public sealed record Result(HttpStatusCode Status, byte[] Body, string? TokenStatus);

    public static async Task<Result> GetAsync(ProxyUnderTest proxy, string url, string? user = null, string? password = null)
    {
        using var client = ProxyClients.Create(proxy);
        var first = await SendAsync(client, url, null);
        if (first.StatusCode != HttpStatusCode.Unauthorized || BearerChallenge.FromResponse(first) is not { } challenge)
        {
            return new(first.StatusCode, await first.Content.ReadAsByteArrayAsync(), null);
        }

        var tokenUrl = $"{challenge.Realm}?service={Uri.EscapeDataString(challenge.Service ?? "")}" +
            (challenge.Scope is null ? "" : $"&scope={Uri.EscapeDataString(challenge.Scope)}");
        using var tokenRequest = new HttpRequestMessage(HttpMethod.Get, tokenUrl);
        if (user is not null)
        {
            tokenRequest.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));
        }

        using var tokenResponse = await client.SendAsync(tokenRequest);
        if (!tokenResponse.IsSuccessStatusCode)
        {
            return new(tokenResponse.StatusCode, await tokenResponse.Content.ReadAsByteArrayAsync(), $"{(int)tokenResponse.StatusCode}");
        }

        using var json = JsonDocument.Parse(await tokenResponse.Content.ReadAsStringAsync());
        var token = json.RootElement.GetProperty("token").GetString();
        using var second = await SendAsync(client, url, token);
        return new(second.StatusCode, await second.Content.ReadAsByteArrayAsync(), "200");
    }

    private static async Task<HttpResponseMessage> SendAsync(HttpClient client, string url, string? token)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Accept.ParseAdd(MediaTypes.OciManifest);
        request.Headers.Accept.ParseAdd(MediaTypes.OciIndex);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return await client.SendAsync(request);
    }
}
