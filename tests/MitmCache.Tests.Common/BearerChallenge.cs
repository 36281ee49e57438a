using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace MitmCache.Tests.Common;

/// <summary>
/// A registry's <c>WWW-Authenticate: Bearer realm=...,service=...,scope=...</c> challenge,
/// and the GET to the realm that answers it. For tests that do the token dance by hand.
/// </summary>
public sealed partial record BearerChallenge(string Realm, string? Service, string? Scope)
{
    public static BearerChallenge? FromResponse(HttpResponseMessage response)
    {
        var header = response.Headers.WwwAuthenticate.FirstOrDefault(h => h.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase));
        if (header?.Parameter is not { } parameter)
        {
            return null;
        }

        var values = Parameter().Matches(parameter).ToDictionary(m => m.Groups[1].Value.ToLowerInvariant(), m => m.Groups[2].Value);
        return values.TryGetValue("realm", out var realm)
            ? new BearerChallenge(realm, values.GetValueOrDefault("service"), values.GetValueOrDefault("scope"))
            : null;
    }

    /// <summary>Gets a token from the realm. <paramref name="scope"/> defaults to the challenge's own scope.</summary>
    public async Task<string> FetchTokenAsync(HttpClient http, string? scope = null, string? user = null,
        string? password = null, CancellationToken ct = default)
    {
        var query = new List<string>();
        if (Service is not null)
        {
            query.Add("service=" + Uri.EscapeDataString(Service));
        }

        if ((scope ?? Scope) is { } wanted)
        {
            query.Add("scope=" + Uri.EscapeDataString(wanted));
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, Realm + (query.Count > 0 ? "?" + string.Join('&', query) : ""));
        if (user is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
                Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));
        }

        using var response = await http.SendAsync(request, ct);
        response.EnsureSuccessStatusCode();
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
        return json.RootElement.TryGetProperty("token", out var token)
            ? token.GetString()!
            : json.RootElement.GetProperty("access_token").GetString()!;
    }

    [GeneratedRegex("(\\w+)=\"([^\"]*)\"")]
    private static partial Regex Parameter();
}
