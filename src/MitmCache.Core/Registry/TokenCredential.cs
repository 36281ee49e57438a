using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Primitives;

namespace MitmCache.Registry;

/// <summary>
/// The credential a token request carries, as one string that grants are keyed by (through
/// <see cref="AccessGrants.KeyOf"/>), or null when it carries none at all. Only a request with no
/// credential of any kind is anonymous: its token proves a repository public. So anything that could be
/// a secret counts: the <c>Authorization</c> header (any scheme), a cookie, every OAuth grant
/// (password, refresh token, client credentials, assertions), and any form or query field that is not
/// one of the few known to carry none. When in doubt, private.
/// <para>The OAuth password and refresh-token grants are written as the Basic header containerd sends
/// the same secret as when it falls back to GET (<c>user:password</c>, and <c>:token</c> for an identity
/// token), so one secret has one grant key whichever way it comes.</para>
/// </summary>
internal static class TokenCredential
{
    /// <summary>Fields of the token protocol (distribution's token spec, OAuth 2) that carry no secret.</summary>
    private static readonly HashSet<string> s_public = new(StringComparer.OrdinalIgnoreCase)
    {
        "service", "scope", "account", "client_id", "offline_token", "access_type", "grant_type",
    };

    public static string? Of(HttpRequest request, byte[] body)
    {
        var parts = new List<string>();
        if (request.Headers.Authorization.ToString() is { Length: > 0 } authorization)
        {
            parts.Add(authorization);
        }

        if (request.Headers.Cookie.ToString() is { Length: > 0 } cookie)
        {
            parts.Add("Cookie " + cookie);
        }

        Add(parts, "Query", request.Query.ToDictionary(q => q.Key, q => q.Value));
        if (IsForm(request))
        {
            var form = QueryHelpers.ParseQuery(Encoding.UTF8.GetString(body));
            var grant = form.TryGetValue("grant_type", out var type) ? type.ToString() : "";
            if (grant == "password" && form.ContainsKey("username") && form.ContainsKey("password"))
            {
                form.Remove("username", out var user);
                form.Remove("password", out var password);
                parts.Add(Basic($"{user}:{password}"));
            }
            else if (grant == "refresh_token" && form.Remove("refresh_token", out var refresh))
            {
                parts.Add(Basic($":{refresh}"));
            }

            Add(parts, "Form", form);
            if (grant.Length > 0 && grant is not ("password" or "refresh_token"))
            {
                parts.Add("OAuth " + grant); // a grant of its own kind: even without a secret field, not anonymous
            }
        }
        else if (body.Length > 0 || HttpMethods.IsPost(request.Method))
        {
            parts.Add("Body " + Convert.ToBase64String(body)); // a POST is a grant of some kind
        }

        return parts.Count switch
        {
            0 => null,
            1 => parts[0],
            _ => string.Join('\n', parts),
        };
    }

    /// <summary>The OAuth form of a token POST, or an empty one.</summary>
    public static Dictionary<string, StringValues> Form(HttpRequest request, byte[] body) =>
        IsForm(request) ? QueryHelpers.ParseQuery(Encoding.UTF8.GetString(body)) : [];

    private static bool IsForm(HttpRequest request) =>
        request.ContentType?.StartsWith("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase) == true;

    private static string Basic(string userAndSecret) => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(userAndSecret));

    /// <summary>Fields that may hold a secret, in a stable order.</summary>
    private static void Add(List<string> parts, string source, Dictionary<string, StringValues> fields)
    {
        var secret = fields.Where(f => !s_public.Contains(f.Key)).OrderBy(f => f.Key, StringComparer.Ordinal).ToList();
        if (secret.Count > 0)
        {
            parts.Add($"{source} " + string.Join('&', secret.Select(f => $"{f.Key}={f.Value}")));
        }
    }
}
