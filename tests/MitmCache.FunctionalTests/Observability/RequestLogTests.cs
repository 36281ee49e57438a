using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Observability;

/// <summary>The JSON request log (the same Serilog formatter as <c>--log-format json</c>) of an authenticated pull.</summary>
public sealed class RequestLogTests
{
    private const string User = "alice";
    private const string Password = "alice-secret-pw";

    [Fact]
    public async Task JsonLog_AuthenticatedPull_OneLinePerRegistryRequestAndNoCredentials()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true, users: new Dictionary<string, string> { [User] = Password });
        var image = await world.PushImageAsync("team/private-app", "v3", (150_000, 71), (20_000, 72));
        world.Registry.ClearAccessLog();
        var linesBefore = world.Proxy.Log.Lines.Count;

        var pull = await Skopeo.CopyToOciAsync($"{world.Authority}/team/private-app:v3", world.Dir.Combine("oci"), world.Proxy.Url,
            world.Proxy.CaBundlePath, $"{User}:{Password}", false, CancellationToken.None);
        Assert.True(pull.Succeeded, pull.StdErr);
        Assert.Contains(world.Tokens!.Log, l => l.StartsWith($"{User} ", StringComparison.Ordinal));

        // One line per registry request: in a cold pull each one went upstream exactly once. Both sides
        // write their line after responding, so wait (bounded) for the two counts to agree.
        List<string> log = [];
        List<JsonElement> requests = [];
        var upstream = 0;
        await Poll.UntilAsync(() =>
        {
            log = world.Proxy.Log.Lines.Skip(linesBefore).ToList();
            requests = log.Select(l => JsonDocument.Parse(l).RootElement)
                .Where(e => e.TryGetProperty("EventId", out var id) && id.GetProperty("Id").GetInt32() == 310)
                .ToList();
            upstream = world.Registry.AccessLog.Count(r => r.Target.StartsWith("/v2/", StringComparison.Ordinal));
            return upstream == requests.Count && requests.Count > image.Blobs.Count();
        }, TimeSpan.FromSeconds(10));

        Assert.Equal(upstream, requests.Count);
        foreach (var line in requests)
        {
            Assert.False(string.IsNullOrEmpty(line.GetProperty("ConnectionId").GetString()), line.ToString());
            Assert.Equal(world.Authority, line.GetProperty("Target").GetString()); // the connection's CONNECT, from its log scope
            Assert.Equal("Intercept", line.GetProperty("Decision").GetString());
            Assert.Equal(world.Authority, line.GetProperty("Registry").GetString());
            Assert.True(line.GetProperty("Bytes").GetInt64() >= 0);
            Assert.True(line.GetProperty("ElapsedMs").GetInt64() >= 0);
            foreach (var property in new[] { "Method", "Repository", "Kind", "Reference", "Result", "Status" })
            {
                Assert.True(line.TryGetProperty(property, out _), $"{property} missing in {line}");
            }
        }

        // Each blob: one line with its digest, the bytes sent and the cache result.
        foreach (var (digest, bytes) in image.Blobs)
        {
            var line = Assert.Single(requests, r => r.GetProperty("Reference").GetString() == digest);
            Assert.Equal("team/private-app", line.GetProperty("Repository").GetString());
            Assert.Equal("blob", line.GetProperty("Kind").GetString());
            Assert.Equal("miss", line.GetProperty("Result").GetString());
            Assert.Equal(bytes.Length, line.GetProperty("Bytes").GetInt64());
            Assert.Equal(200, line.GetProperty("Status").GetInt32());
        }

        var manifest = Assert.Single(requests, r => r.GetProperty("Kind").GetString() == "manifest" && r.GetProperty("Method").GetString() == "GET");
        Assert.Equal("v3", manifest.GetProperty("Reference").GetString());
        Assert.Equal(image.Manifest.Length, manifest.GetProperty("Bytes").GetInt64());

        // A pull is one connection: its requests share an ID with the CONNECT that started it.
        var connection = requests[0].GetProperty("ConnectionId").GetString();
        Assert.Contains(log, l => l.Contains("CONNECT ", StringComparison.Ordinal) && l.Contains($"\"ConnectionId\":\"{connection}\"", StringComparison.Ordinal));

        // No credential of any kind: the password, the Basic token, a bearer token (a JWT starts with eyJ).
        using var tokenClient = LoopbackHttp.CreateClient(new Dictionary<string, int> { [Hosts.Auth] = world.Tokens.Port }, world.Pki.CaCertificate);
        using var tokenRequest = new HttpRequestMessage(HttpMethod.Get, $"{world.Tokens.Realm}?service={world.Tokens.Service}&scope=repository:team/private-app:pull");
        var basic = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{User}:{Password}"));
        tokenRequest.Headers.Authorization = new AuthenticationHeaderValue("Basic", basic);
        using var tokenResponse = await tokenClient.SendAsync(tokenRequest);
        var token = JsonDocument.Parse(await tokenResponse.Content.ReadAsStringAsync()).RootElement.GetProperty("token").GetString()!;
        Assert.StartsWith("eyJ", token, StringComparison.Ordinal);

        var text = world.Proxy.Log.Text;
        Assert.DoesNotContain(Password, text, StringComparison.Ordinal);
        Assert.DoesNotContain(basic, text, StringComparison.Ordinal);
        Assert.DoesNotContain("eyJ", text, StringComparison.Ordinal);
        Assert.DoesNotContain(token.Split('.')[0] + "." + token.Split('.')[1][..20], text, StringComparison.Ordinal);
        Assert.DoesNotContain("Authorization", text, StringComparison.OrdinalIgnoreCase);
    }
}
