using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Registry;

/// <summary>
/// Pushes through the proxy: forwarded untouched, never answered from the cache. A push asks "does the
/// registry have this blob in my repository?" with HEAD; a cached copy from another repository must not
/// say yes, or the client skips the upload and the registry refuses the manifest.
/// </summary>
public sealed class PushThroughTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Skopeo_PushesCachedImageToNewRepository_RegistryHasEveryBlobThere(bool tokenAuth)
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth);
        var image = await world.PushImageAsync("library/source", "v1", (150_000, 141), (30_000, 142));
        var creds = tokenAuth ? $"{TokenServer.AdminUser}:{TokenServer.DefaultAdminPassword}" : null;
        var pulled = await Skopeo.CopyToOciAsync($"{world.Authority}/library/source:v1", world.Dir.Combine("oci"), world.Proxy.Url, world.Proxy.CaBundlePath, creds, false, CancellationToken.None);
        Assert.True(pulled.Succeeded, pulled.StdErr);

        var pushed = await Skopeo.CopyFromOciAsync(world.Dir.Combine("oci"), $"{world.Authority}/team/copy:v2", world.Proxy.Url, world.Proxy.CaBundlePath, creds, CancellationToken.None);

        Assert.True(pushed.Succeeded, pushed.StdErr + "\n" + world.Proxy.Log.Tail());
        // Straight from the registry, not through the proxy: the new repository holds every blob and the manifest.
        using var http = world.Registry.CreateClient();
        var direct = new RegistryPusher(http, world.Authority);
        foreach (var (digest, _) in image.Blobs)
        {
            using var blob = await direct.SendAsync("team/copy", () => new(HttpMethod.Head, $"https://{world.Authority}/v2/team/copy/blobs/{digest}"), CancellationToken.None);
            // 307: this world's registry sends blobs it has to its CDN.
            Assert.True(blob.StatusCode is System.Net.HttpStatusCode.OK or System.Net.HttpStatusCode.TemporaryRedirect, $"{digest}: {(int)blob.StatusCode} from the registry");
        }

        using var manifest = await direct.SendAsync("team/copy", () =>
        {
            var request = new HttpRequestMessage(HttpMethod.Get, $"https://{world.Authority}/v2/team/copy/manifests/v2");
            request.Headers.Accept.ParseAdd(image.MediaType);
            return request;
        }, CancellationToken.None);
        Assert.True(manifest.IsSuccessStatusCode, $"manifest: {(int)manifest.StatusCode} from the registry");
    }
}
