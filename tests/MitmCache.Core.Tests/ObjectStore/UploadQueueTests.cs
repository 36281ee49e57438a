using MitmCache.Caching;
using MitmCache.Core.Tests.Certificates;
using MitmCache.ObjectStore;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.ObjectStore;

public sealed class UploadQueueTests : IDisposable
{
    private static readonly DateTime s_t0 = new(2025, 1, 1, 12, 0, 0, DateTimeKind.Utc);
    private readonly TempDirectory _directory = new();

    [Fact]
    public void TryEnqueue_SameDigestTwice_IsOneRecord()
    {
        using var index = new IndexDatabase(_directory.Combine("index.db"));
        var queue = new UploadQueue(index, capacity: 10);

        Assert.Equal(EnqueueResult.Queued, queue.TryEnqueue(Digest.Compute("a"u8), "m", s_t0));
        Assert.Equal(EnqueueResult.AlreadyQueued, queue.TryEnqueue(Digest.Compute("a"u8), "m", s_t0));

        Assert.Equal(1, queue.Count);
    }

    [Fact]
    public void TryEnqueue_AtCapacity_IsRefused()
    {
        using var index = new IndexDatabase(_directory.Combine("index.db"));
        var queue = new UploadQueue(index, capacity: 2);
        queue.TryEnqueue(Digest.Compute("a"u8), "m", s_t0);
        queue.TryEnqueue(Digest.Compute("b"u8), "m", s_t0);

        Assert.Equal(EnqueueResult.Full, queue.TryEnqueue(Digest.Compute("c"u8), "m", s_t0));

        Assert.Equal(2, queue.Count);
    }

    [Fact]
    public void Queue_SurvivesReopeningTheIndex_WithAttemptsAndDueTimes()
    {
        var path = _directory.Combine("index.db");
        using (var index = new IndexDatabase(path))
        {
            var queue = new UploadQueue(index, capacity: 10);
            queue.TryEnqueue(Digest.Compute("a"u8), "application/vnd.oci.image.manifest.v1+json", s_t0);
            queue.TryEnqueue(Digest.Compute("b"u8), "m", s_t0.AddSeconds(1));
            queue.Postpone(queue.Due(s_t0, 10).Single(), s_t0.AddMinutes(5));
        }

        using (var index = new IndexDatabase(path))
        {
            var queue = new UploadQueue(index, capacity: 10);

            Assert.Equal(2, queue.Count);
            var due = queue.Due(s_t0.AddMinutes(1), 10);
            Assert.Equal(Digest.Compute("b"u8).ToString(), Assert.Single(due).Id);
            Assert.Equal(s_t0.AddSeconds(1), queue.NextDue()!.Value.ToUniversalTime());
            queue.Remove(due[0].Id);
            var postponed = queue.Due(s_t0.AddMinutes(5), 10).Single();
            Assert.Equal((1, "application/vnd.oci.image.manifest.v1+json"), (postponed.Attempts, postponed.MediaType));
            Assert.Equal(1, queue.Count);
        }
    }

    public void Dispose() => _directory.Dispose();
}
