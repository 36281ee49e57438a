using System.Security.Cryptography;
using System.Text;
using MitmCache.Registry;

namespace MitmCache.Caching;

/// <summary>
/// Tags resolved to manifest digests, per normalized Accept set (collection <c>tags</c>). A tag is rewritten in
/// place when it moves; the tags that point to a blob go with it (<see cref="BlobRecords.DeleteBlob"/>).
/// </summary>
internal sealed class TagRecords
{
    private readonly IndexCollection<TagRecord> _tags;

    public TagRecords(IndexDatabase database) =>
        _tags = database.Collection<TagRecord>(IndexSchema.Tags, tags =>
        {
            tags.EnsureIndex(t => t.TagKey);
            tags.EnsureIndex(t => t.Digest);
        });

    /// <summary>A bookkeeping write: false when storage failed (see <see cref="IndexDatabase.TryWrite"/>).</summary>
    public bool PutTag(TagRecord record)
    {
        // The Accept set is client input of any length: key by its hash (LiteDB ids are < 1023 bytes).
        record.Id = $"{record.TagKey}|{Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(record.AcceptKey)))[..32]}";
        return _tags.TryWrite(c => c.Upsert(record));
    }

    public List<TagRecord> FindTags(string registry, string repository, string tag)
    {
        var key = TagRecord.MakeTagKey(registry, repository, tag);
        return _tags.Use(c => c.Find(t => t.TagKey == key).ToList());
    }

    public List<TagRecord> AllTags() => _tags.Use(c => c.FindAll().ToList());

    public int DeleteTagsPointingTo(Digest digest)
    {
        var key = digest.ToString();
        return _tags.Use(c => c.DeleteMany(t => t.Digest == key));
    }
}
